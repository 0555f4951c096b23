namespace ModelGateway.AppHost.Infrastructure;

/// <summary>Small wiring helpers shared by the three service projects.</summary>
internal static class ServiceWiring
{
    /// <summary>Sets <paramref name="name"/> from a secret parameter; nothing when the service uses its development default.</summary>
    public static IResourceBuilder<ProjectResource> WithSecret(this IResourceBuilder<ProjectResource> project, string name,
        IResourceBuilder<ParameterResource>? secret) =>
        secret is null ? project : project.WithEnvironment(name, secret);

#pragma warning disable ASPIREPROBES001 // Probes are experimental in Aspire 13.6; they are what azd turns into Container Apps probes.
    /// <summary>
    /// Liveness on <c>/alive</c> (the process answers: restart it if not) and readiness on <c>/health</c> (send it
    /// traffic). azd turns them into Container Apps probes; locally they are the AppHost's health checks, so
    /// <c>WaitFor</c> on a service waits for both.
    /// </summary>
    public static IResourceBuilder<ProjectResource> WithServiceProbes(this IResourceBuilder<ProjectResource> project) =>
        project.WithHttpProbe(ProbeType.Liveness, "/alive").WithHttpProbe(ProbeType.Readiness, "/health");
#pragma warning restore ASPIREPROBES001
}
