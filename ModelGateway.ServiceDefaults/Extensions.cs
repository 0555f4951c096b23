using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// What every ModelGateway service shares: OpenTelemetry, health checks, service discovery and
/// HttpClient defaults. Two flavours, as in eShop:
/// <see cref="AddServiceDefaults{TBuilder}"/> adds the standard resilience handler to every HttpClient
/// (right for short service-to-service calls); <see cref="AddBasicServiceDefaults{TBuilder}"/> does not,
/// for services whose outbound calls are long streaming POSTs to model providers that must never be
/// retried or cut at the handler's 10 s timeout.
/// </summary>
public static class ServiceDefaultsExtensions
{
    /// <summary>Activity sources and meters of our own that every service exports.</summary>
    public const string TelemetryPrefix = "ModelGateway";

    public const string HealthEndpointPath = "/health";
    public const string AlivenessEndpointPath = "/alive";

    public static TBuilder AddServiceDefaults<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        builder.AddBasicServiceDefaults();
        builder.Services.ConfigureHttpClientDefaults(http =>
        {
            http.AddStandardResilienceHandler();
        });
        return builder;
    }

    public static TBuilder AddBasicServiceDefaults<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        builder.ConfigureOpenTelemetry();
        builder.AddDefaultHealthChecks();
        builder.Services.AddServiceDiscovery();
        builder.Services.ConfigureHttpClientDefaults(http => http.AddServiceDiscovery());
        return builder;
    }

    public static TBuilder ConfigureOpenTelemetry<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        builder.Logging.AddOpenTelemetry(logging =>
        {
            logging.IncludeFormattedMessage = true;
            logging.IncludeScopes = true;
        });

        builder.Services.AddOpenTelemetry()
            .WithMetrics(metrics => metrics
                .AddAspNetCoreInstrumentation()
                .AddHttpClientInstrumentation()
                .AddRuntimeInstrumentation()
                .AddMeter(TelemetryPrefix + ".*"))
            .WithTracing(tracing => tracing
                .AddSource(TelemetryPrefix + ".*")
                .AddAspNetCoreInstrumentation(o =>
                    // Probes would drown the traces that matter.
                    o.Filter = ctx => !ctx.Request.Path.StartsWithSegments(HealthEndpointPath)
                                      && !ctx.Request.Path.StartsWithSegments(AlivenessEndpointPath))
                // HttpClient's own spans (.NET 9+: the "System.Net.Http" source, with the OpenTelemetry HTTP client semantic
                // conventions). The instrumentation package would listen to its DiagnosticListener as well, adding a callback
                // per request and a second traceparent injection (docs/benchmark.md, session 16).
                .AddSource("System.Net.Http"));

        // Aspire sets OTEL_EXPORTER_OTLP_ENDPOINT for every resource; any OTLP backend works the same way.
        if (!string.IsNullOrWhiteSpace(builder.Configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]))
        {
            builder.Services.AddOpenTelemetry().UseOtlpExporter();
        }

        return builder;
    }

    public static TBuilder AddDefaultHealthChecks<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        builder.Services.AddHealthChecks()
            .AddCheck("self", () => HealthCheckResult.Healthy(), ["live"]);
        return builder;
    }

    /// <summary>
    /// Maps <c>/alive</c> (liveness: the process answers) and, unless the service maps its own
    /// <c>/health</c>, the readiness endpoint over every registered health check.
    /// </summary>
    public static WebApplication MapDefaultEndpoints(this WebApplication app, bool mapHealth = true)
    {
        if (mapHealth)
        {
            app.MapHealthChecks(HealthEndpointPath);
        }
        app.MapHealthChecks(AlivenessEndpointPath, new HealthCheckOptions
        {
            Predicate = r => r.Tags.Contains("live"),
        });
        return app;
    }
}
