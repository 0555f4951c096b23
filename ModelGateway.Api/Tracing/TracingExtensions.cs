using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using ModelGateway.Api.Ledger;

namespace ModelGateway.Api.Tracing;

internal static class TracingExtensions
{
    /// <summary>The trace history: its durable writer (the ledger's mechanism, a sink of its own), retention and reads.</summary>
    public static IHostApplicationBuilder AddTraceHistory(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<TraceOptions>().Bind(builder.Configuration.GetSection(TraceOptions.SectionName))
            .ValidateDataAnnotations().ValidateOnStart();
        builder.Services.TryAddSingleton<IBatchSink<TraceRecord>, TraceSink>();
        builder.Services.TryAddSingleton(sp =>
        {
            var o = sp.GetRequiredService<IOptions<TraceOptions>>().Value;
            return new DurableBatchWriter<TraceRecord>(sp.GetRequiredService<IBatchSink<TraceRecord>>(),
                o.ToSettings("traces"),
                sp.GetRequiredService<ILoggerFactory>().CreateLogger("ModelGateway.Api.Tracing"));
        });
        builder.Services.AddHostedService<BatchWriterService<TraceRecord>>();
        builder.Services.TryAddSingleton<TraceRetentionService>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<TraceRetentionService>());
        builder.Services.TryAddSingleton<TraceQueries>();
        return builder;
    }
}
