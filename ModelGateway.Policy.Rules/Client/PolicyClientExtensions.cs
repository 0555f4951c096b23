using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using ModelGateway.Policy.Rules.BuiltIn;
using ModelGateway.Policy.Rules.Decisions;
using Refit;

namespace ModelGateway.Policy.Rules.Client;

public static class PolicyClientExtensions
{
    /// <summary>
    /// Registers what the Api needs to decide policy on every request: <see cref="IPolicyEngine"/> (a
    /// <see cref="PolicyDecider"/> that evaluates built-in tenants in process and asks the Policy service for
    /// OPA tenants), <see cref="BuiltInPolicyEngine"/>, and <see cref="IPolicyServiceClient"/> configured from
    /// <see cref="PolicyClientOptions"/> (validated at start).
    /// </summary>
    public static IHostApplicationBuilder AddPolicyClient(this IHostApplicationBuilder builder)
    {
        var options = builder.Services.AddOptions<PolicyClientOptions>()
            .Bind(builder.Configuration.GetSection(PolicyClientOptions.SectionName))
            .ValidateOnStart();
        if (builder.Environment.IsDevelopment())
        {
            options.PostConfigure(o => o.ServiceKey ??= PolicyServiceAuth.DevelopmentServiceKey);
        }

        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<PolicyClientOptions>, PolicyClientOptionsValidator>());

        builder.Services
            .AddRefitGeneratedClient<IPolicyServiceClient>(PolicyJsonContext.Default)
            .ConfigureHttpClient((services, http) =>
            {
                var o = services.GetRequiredService<IOptions<PolicyClientOptions>>().Value;
                http.BaseAddress = o.BaseAddress;
                http.Timeout = o.Timeout;
                http.DefaultRequestHeaders.Add(PolicyServiceAuth.ServiceKeyHeader, o.ServiceKey);
            });

        builder.Services.TryAddSingleton<IRemotePolicyEngine, PolicyServiceEngine>();
        builder.Services.AddPolicyDecider();
        return builder;
    }

    /// <summary>
    /// Registers <see cref="PolicyDecider"/> as <see cref="IPolicyEngine"/>, with the built-in engine and
    /// telemetry. A registered <see cref="IRemotePolicyEngine"/> decides for OPA tenants.
    /// </summary>
    public static IServiceCollection AddPolicyDecider(this IServiceCollection services)
    {
        services.AddMetrics();
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<BuiltInPolicyEngine>();
        services.TryAddSingleton<PolicyTelemetry>();
        services.TryAddSingleton<PolicyDecider>();
        services.TryAddSingleton<IPolicyEngine>(sp => sp.GetRequiredService<PolicyDecider>());
        return services;
    }
}
