using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using ModelGateway.Api.Ledger;
using ModelGateway.Api.Tenancy;

namespace ModelGateway.Api.Budgets;

internal static class BudgetsExtensions
{
    /// <summary>Admission and settlement in Redis, the usage ledger's durable writer, and the per-IP flood guard.</summary>
    public static IHostApplicationBuilder AddBudgets(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<BudgetOptions>().Bind(builder.Configuration.GetSection(BudgetOptions.SectionName))
            .ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddOptions<LedgerOptions>().Bind(builder.Configuration.GetSection(LedgerOptions.SectionName))
            .ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddOptions<FloodGuardOptions>().Bind(builder.Configuration.GetSection(FloodGuardOptions.SectionName))
            .ValidateDataAnnotations().ValidateOnStart();

        builder.Services.TryAddSingleton<IBatchSink<LedgerRow>, LedgerSink>();
        builder.Services.TryAddSingleton(sp =>
        {
            var o = sp.GetRequiredService<IOptions<LedgerOptions>>().Value;
            return new DurableBatchWriter<LedgerRow>(sp.GetRequiredService<IBatchSink<LedgerRow>>(),
                o.ToSettings("usage-ledger"),
                sp.GetRequiredService<ILoggerFactory>().CreateLogger("ModelGateway.Api.Ledger"));
        });
        builder.Services.AddHostedService<RedisWarmup>();
        builder.Services.AddHostedService<BatchWriterService<LedgerRow>>();
        builder.Services.TryAddSingleton<LocalAdmissionLimiter>();
        builder.Services.TryAddSingleton<AdmissionService>();
        builder.Services.TryAddSingleton<FloodGuard>();
        builder.Services.TryAddSingleton<LedgerQueries>();
        builder.Services.TryAddSingleton<KeyCacheInvalidation>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<KeyCacheInvalidation>());
        builder.Services.TryAddSingleton<TenantAdminStore>();
        builder.Services.TryAddSingleton<RequestAuthenticator>();
        return builder;
    }
}
