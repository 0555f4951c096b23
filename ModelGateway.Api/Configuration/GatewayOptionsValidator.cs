using Microsoft.Extensions.Options;
using ModelGateway.Api.Providers;

namespace ModelGateway.Api.Configuration;

/// <summary>Cross-field checks that data annotations cannot express; every problem is listed in one failure.</summary>
internal sealed class GatewayOptionsValidator : IValidateOptions<GatewayOptions>
{
    public ValidateOptionsResult Validate(string? name, GatewayOptions options)
    {
        var problems = new List<string>();
        foreach (var (providerName, provider) in options.Providers)
        {
            if (!ProviderTypes.All.Contains(provider.Type))
            {
                problems.Add($"Gateway:Providers:{providerName}:Type '{provider.Type}' is not one of {string.Join(", ", ProviderTypes.All)}.");
            }
            if (!Uri.TryCreate(provider.BaseUrl, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            {
                problems.Add($"Gateway:Providers:{providerName}:BaseUrl '{provider.BaseUrl}' is not an absolute http(s) URL.");
            }
            if (provider.FirstByteTimeout <= TimeSpan.Zero || provider.IdleTimeout <= TimeSpan.Zero)
            {
                problems.Add($"Gateway:Providers:{providerName}: timeouts must be positive.");
            }
        }
        foreach (var (alias, route) in options.Routes)
        {
            if (route.Targets.Count == 0)
            {
                problems.Add($"Gateway:Routes:{alias} has no targets.");
            }
            for (var i = 0; i < route.Targets.Count; i++)
            {
                var target = route.Targets[i];
                if (!options.Providers.ContainsKey(target.Provider))
                {
                    problems.Add($"Gateway:Routes:{alias}:Targets:{i}:Provider '{target.Provider}' is not a configured provider.");
                }
                if (string.IsNullOrWhiteSpace(target.Model))
                {
                    problems.Add($"Gateway:Routes:{alias}:Targets:{i}:Model is required.");
                }
                if (target.Weight < 0)
                {
                    problems.Add($"Gateway:Routes:{alias}:Targets:{i}:Weight must not be negative.");
                }
            }
            if (route.Targets.Count > 0 && route.Targets.All(t => t.Weight == 0))
            {
                problems.Add($"Gateway:Routes:{alias}: at least one target needs a positive weight.");
            }
            foreach (var fallback in route.Fallbacks)
            {
                if (!options.Routes.ContainsKey(fallback) || fallback == alias)
                {
                    problems.Add($"Gateway:Routes:{alias}:Fallbacks names '{fallback}', which is not another configured route.");
                }
            }
        }
        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }
}
