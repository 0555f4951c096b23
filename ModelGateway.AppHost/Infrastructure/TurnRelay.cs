namespace ModelGateway.AppHost.Infrastructure;

/// <summary>
/// coturn as a container (publish mode, or a run with a container engine). Container Apps ingress carries HTTP and
/// TCP only, never UDP, so clients reach TURN over TCP, and over TLS on the same port when a certificate is mounted
/// (coturn detects TLS on its plain listener). Relayed media leaves coturn as UDP towards Realtime. docs/deploy.md
/// explains what operators must provide.
/// </summary>
internal static class TurnRelay
{
    public const string Image = "coturn/coturn";
    public const string Tag = "4.6.3";
    public const int Port = 3478;
    public const string CertificateFolder = "/etc/coturn/tls";

    public static IResourceBuilder<ContainerResource> AddCoturnContainer(this IDistributedApplicationBuilder builder, string name,
        IResourceBuilder<ParameterResource> secret) =>
        builder.AddContainer(name, Image, Tag)
            // The secret travels as an environment variable (a Container Apps secret reference), never on the command
            // line, where it would be visible in the app's definition; a shell expands it at start.
            .WithEnvironment("TURN_SECRET", secret)
            .WithEntrypoint("/bin/sh")
            .WithArgs("-c", string.Join(' ',
                "exec turnserver -n",
                $"--listening-port={Port}",
                "--use-auth-secret --static-auth-secret=\"$TURN_SECRET\"",
                "--realm=modelgateway --fingerprint",
                // No UDP or DTLS listener: nothing could reach it through the ingress.
                "--no-udp --no-dtls --no-cli",
                $"--cert={CertificateFolder}/cert.pem --pkey={CertificateFolder}/key.pem",
                "--min-port=49160 --max-port=49200",
                "--no-multicast-peers --log-file=stdout --simple-log"))
            .WithEndpoint(port: Port, targetPort: Port, scheme: "tcp", name: "turn", isProxied: false, isExternal: true);
}
