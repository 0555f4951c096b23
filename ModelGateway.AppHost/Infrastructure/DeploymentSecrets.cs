using Microsoft.Extensions.Hosting;

namespace ModelGateway.AppHost.Infrastructure;

/// <summary>
/// The keys shared between services. Locally in Development the services use their own well-known development keys
/// (see the local contract in ARCHITECTURE.md), so nothing is wired; everywhere else (publish mode, or a run in another
/// environment) each key is a secret parameter: azd prompts for it once and stores it as a Container Apps secret.
/// </summary>
internal sealed record DeploymentSecrets(
    IResourceBuilder<ParameterResource>? AdminKey,
    IResourceBuilder<ParameterResource>? PolicyServiceKey,
    IResourceBuilder<ParameterResource> TurnSecret)
{
    public const string AdminKeyName = "admin-key";
    public const string PolicyServiceKeyName = "policy-service-key";
    public const string TurnSecretName = "turn-secret";

    /// <summary>Whether the application runs with development defaults (run mode in the Development environment).</summary>
    public static bool UsesDevelopmentDefaults(IDistributedApplicationBuilder builder) =>
        builder.ExecutionContext.IsRunMode && builder.Environment.IsDevelopment();

    public static DeploymentSecrets Add(IDistributedApplicationBuilder builder)
    {
        var development = UsesDevelopmentDefaults(builder);
        if (development)
        {
            // coturn and Realtime must agree on a secret even locally; this one never leaves the machine.
            builder.Configuration["Parameters:" + TurnSecretName] ??= "dev-turn-secret-change-me";
        }
        return new DeploymentSecrets(
            development ? null : builder.AddParameter(AdminKeyName, secret: true),
            development ? null : builder.AddParameter(PolicyServiceKeyName, secret: true),
            builder.AddParameter(TurnSecretName, secret: true));
    }
}
