namespace ModelGateway.AppHost.Infrastructure;

/// <summary>
/// OPA for tenants whose policy engine is <c>opa</c> (docs/policy.md). It is a container, so it exists only where
/// containers do (publish mode, or a run with a container engine); elsewhere the Policy service decides every tenant
/// with the built-in engine and its <c>/health</c> says so.
/// </summary>
internal static class OpaSidecar
{
    /// <summary>OPA's port; since OPA 1.0 it binds to localhost unless told otherwise, hence the explicit address.</summary>
    public const int Port = 8181;

    /// <summary>
    /// The image is policies/Dockerfile: the pinned upstream OPA with the repository's Rego baked in at /policies.
    /// Baked, not bind-mounted: Container Apps has no host folder to mount, and the image then carries exactly the
    /// policy of the commit that was deployed.
    /// </summary>
    public static IResourceBuilder<ContainerResource> AddOpa(this IDistributedApplicationBuilder builder, string name) =>
        builder.AddDockerfile(name, Path.Combine(builder.AppHostDirectory, "..", "policies"))
            .WithArgs("run", "--server", $"--addr=0.0.0.0:{Port}", "/policies")
            .WithHttpEndpoint(targetPort: Port, name: "http")
            .WithHttpHealthCheck("/health");
}
