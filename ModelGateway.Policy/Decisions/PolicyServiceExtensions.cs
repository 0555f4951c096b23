using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using ModelGateway.Policy.Opa;
using ModelGateway.Policy.Rules;
using ModelGateway.Policy.Rules.Client;
using ModelGateway.Policy.Security;
using Refit;

namespace ModelGateway.Policy.Decisions;

internal static partial class PolicyServiceExtensions
{
    /// <summary>
    /// Keys, the decider (built-in engine + OPA when <c>Policy:Opa:Url</c> is set), the OPA client, its
    /// cache and health check. All options are validated at start.
    /// </summary>
    public static IHostApplicationBuilder AddPolicyService(this IHostApplicationBuilder builder)
    {
        var keys = builder.Services.AddOptions<PolicyServiceOptions>()
            .Bind(builder.Configuration.GetSection(PolicyServiceOptions.SectionName))
            .ValidateOnStart();
        if (builder.Environment.IsDevelopment())
        {
            // The local contract: well-known keys in Development only; elsewhere start-up fails without them.
            keys.PostConfigure(o =>
            {
                o.AdminKey ??= PolicyServiceOptions.DevelopmentAdminKey;
                o.ServiceKey ??= PolicyServiceAuth.DevelopmentServiceKey;
            });
        }

        builder.Services.AddOptions<OpaOptions>()
            .Bind(builder.Configuration.GetSection(OpaOptions.SectionName))
            .ValidateOnStart();
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<PolicyServiceOptions>, PolicyServiceOptionsValidator>());
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<OpaOptions>, OpaOptionsValidator>());

        // No resilience handler on this client (the service uses the basic service defaults): a retry would
        // multiply a 250 ms budget, and a failed decision already has a defined, safe answer.
        builder.Services
            .AddRefitGeneratedClient<IOpaClient>(OpaJsonContext.Default)
            .ConfigureHttpClient((services, http) =>
            {
                var o = services.GetRequiredService<IOptions<OpaOptions>>().Value;
                // Unconfigured: a placeholder nobody calls (every caller checks IsConfigured first).
                http.BaseAddress = o.Url ?? new Uri("http://opa.invalid");
                // Per-call budgets are enforced with cancellation tokens; this is only a backstop.
                http.Timeout = TimeSpan.FromSeconds(30);
            });

        builder.Services.TryAddSingleton<KeyAuthorizer>();
        builder.Services.TryAddSingleton<OpaEvaluator>();
        builder.Services.TryAddSingleton<OpaDecisionCache>();
        builder.Services.TryAddSingleton<IRemotePolicyEngine, OpaPolicyEngine>();
        builder.Services.AddPolicyDecider();
        builder.Services.AddHealthChecks().AddCheck<OpaHealthCheck>(OpaHealthCheck.Name);
        return builder;
    }

    /// <summary>Says once, at start, which engine decides OPA tenants.</summary>
    public static WebApplication LogPolicyEngine(this WebApplication app)
    {
        var opa = app.Services.GetRequiredService<IOptions<OpaOptions>>().Value;
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("ModelGateway.Policy");
        if (opa.IsConfigured)
        {
            LogOpaEngine(logger, opa.Url!, opa.DecisionPath, opa.Timeout.TotalMilliseconds);
        }
        else
        {
            LogBuiltInOnly(logger);
        }

        return app;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "OPA tenants are decided by OPA at {OpaUrl} (rule {DecisionPath}, timeout {TimeoutMs} ms); failures deny unless a tenant is fail-open")]
    private static partial void LogOpaEngine(ILogger logger, Uri opaUrl, string decisionPath, double timeoutMs);

    [LoggerMessage(Level = LogLevel.Warning, Message = "OPA is not configured (Policy:Opa:Url is empty): every decision, including tenants set to OPA, uses the built-in engine")]
    private static partial void LogBuiltInOnly(ILogger logger);
}
