using ModelGateway.Api.Configuration;
using ModelGateway.Api.Providers;

namespace ModelGateway.Api.Hosting;

/// <summary>
/// Outside Development the gateway has no defaults for anything secret or environment-specific, so a deployment that
/// forgot a setting must stop before it serves a request, and say in one message everything that is missing: an
/// operator fixes them all in one go instead of one restart per option class (each options validator on its own would
/// report only its own section). Runs while the host is being built, before any options are validated.
/// </summary>
internal static class StartupValidation
{
    /// <summary>
    /// Provider types whose upstream refuses calls without a key. llama.cpp servers usually run keyless on a private
    /// network; an OpenAI-compatible provider (OpenRouter, OpenAI, vLLM behind a gateway) always gets one here, so a
    /// deployment cannot route real traffic to an endpoint that will answer 401 to every request.
    /// </summary>
    private static readonly HashSet<string> TypesRequiringKey = [ProviderTypes.OpenAICompatible, ProviderTypes.Anthropic];

    public static IHostApplicationBuilder ValidateProductionSettings(this IHostApplicationBuilder builder)
    {
        if (builder.Environment.IsDevelopment())
        {
            return builder;
        }
        var missing = MissingSettings(builder.Configuration);
        if (missing.Count > 0)
        {
            throw new InvalidOperationException(FormatMessage(builder.Environment.EnvironmentName, missing));
        }
        return builder;
    }

    /// <summary>Every required setting that is absent, as "<c>key</c>: how to set it".</summary>
    internal static List<string> MissingSettings(IConfiguration configuration)
    {
        var missing = new List<string>();
        if (string.IsNullOrWhiteSpace(configuration["Tenancy:AdminKey"]))
        {
            missing.Add("Tenancy:AdminKey: the admin key (env Tenancy__AdminKey; AppHost parameter admin-key)");
        }
        if (string.IsNullOrWhiteSpace(configuration["PolicyClient:ServiceKey"]))
        {
            missing.Add("PolicyClient:ServiceKey: the key shared with the Policy service (env PolicyClient__ServiceKey; AppHost parameter policy-service-key)");
        }
        if (string.IsNullOrWhiteSpace(configuration.GetConnectionString("redis")) && string.IsNullOrWhiteSpace(configuration["Aspire:StackExchange:Redis:ConnectionString"]))
        {
            missing.Add("ConnectionStrings:redis: the Redis connection string (env ConnectionStrings__redis; set by the AppHost's reference)");
        }
        if (string.IsNullOrWhiteSpace(configuration.GetConnectionString("postgres")) && string.IsNullOrWhiteSpace(configuration["Aspire:Npgsql:ConnectionString"]))
        {
            missing.Add("ConnectionStrings:postgres: the Postgres connection string (env ConnectionStrings__postgres; set by the AppHost's reference)");
        }

        // Only providers that a route sends traffic to need a key: a provider declared but unused costs nothing.
        var gateway = configuration.GetSection(GatewayOptions.SectionName).Get<GatewayOptions>() ?? new GatewayOptions();
        foreach (var (providerName, routes) in ProvidersInUse(gateway))
        {
            if (gateway.Providers.TryGetValue(providerName, out var provider)
                && TypesRequiringKey.Contains(provider.Type)
                && string.IsNullOrWhiteSpace(provider.ApiKey))
            {
                missing.Add($"Gateway:Providers:{providerName}:ApiKey: the {provider.Type} key, used by route(s) {string.Join(", ", routes)} " +
                            $"(env Gateway__Providers__{providerName}__ApiKey; AppHost parameter {providerName}-api-key)");
            }
        }
        return missing;
    }

    private static SortedDictionary<string, SortedSet<string>> ProvidersInUse(GatewayOptions gateway)
    {
        var inUse = new SortedDictionary<string, SortedSet<string>>(StringComparer.Ordinal);
        foreach (var (alias, route) in gateway.Routes)
        {
            foreach (var target in route.Targets)
            {
                if (!inUse.TryGetValue(target.Provider, out var aliases))
                {
                    inUse[target.Provider] = aliases = new SortedSet<string>(StringComparer.Ordinal);
                }
                aliases.Add(alias);
            }
        }
        return inUse;
    }

    private static string FormatMessage(string environment, List<string> missing) =>
        $"ModelGateway.Api cannot start in the {environment} environment: {missing.Count} required setting(s) missing." + Environment.NewLine +
        string.Concat(missing.Select(m => "  - " + m + Environment.NewLine)) +
        "Development defaults (keys, the fake upstream) apply only when ASPNETCORE_ENVIRONMENT=Development; see docs/deploy.md.";
}
