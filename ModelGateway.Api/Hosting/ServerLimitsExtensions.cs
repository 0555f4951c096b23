using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace ModelGateway.Api.Hosting;

internal static class ServerLimitsExtensions
{
    private const string CorsPolicy = "gateway";

    /// <summary>Kestrel's connection limits and the shutdown budget from <c>Server</c>; CORS from <c>Cors</c>.</summary>
    public static IHostApplicationBuilder AddServerLimits(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<ServerLimitsOptions>().Bind(builder.Configuration.GetSection(ServerLimitsOptions.SectionName))
            .ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddOptions<GatewayCorsOptions>().Bind(builder.Configuration.GetSection(GatewayCorsOptions.SectionName))
            .ValidateDataAnnotations()
            .Validate(o => o.AllowedOrigins.TrueForAll(origin => origin != "*" && Uri.TryCreate(origin, UriKind.Absolute, out var u)
                    && u.AbsolutePath == "/" && !origin.EndsWith('/')),
                "Cors:AllowedOrigins must list origins as scheme://host[:port] (no path, no trailing slash, never '*').")
            .ValidateOnStart();

        builder.Services.AddOptions<KestrelServerOptions>().Configure<IOptions<ServerLimitsOptions>>((kestrel, limits) =>
        {
            var o = limits.Value;
            kestrel.Limits.RequestHeadersTimeout = o.RequestHeadersTimeout;
            kestrel.Limits.KeepAliveTimeout = o.KeepAliveTimeout;
            kestrel.Limits.MaxConcurrentConnections = o.MaxConcurrentConnections == 0 ? null : o.MaxConcurrentConnections;
            // A connection upgraded to WebSocket is counted separately; the gateway serves none, so hold it to the same bound.
            kestrel.Limits.MaxConcurrentUpgradedConnections = kestrel.Limits.MaxConcurrentConnections;
        });
        builder.Services.AddOptions<HostOptions>().Configure<IOptions<ServerLimitsOptions>>((host, limits) =>
            host.ShutdownTimeout = limits.Value.DrainTimeout + limits.Value.FlushTimeout);
        builder.Services.TryAddSingleton<ShutdownDrain>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<ShutdownDrain>());

        var origins = builder.Configuration.GetSection(GatewayCorsOptions.SectionName).Get<GatewayCorsOptions>()?.AllowedOrigins ?? [];
        if (origins.Count > 0)
        {
            builder.Services.AddCors(cors => cors.AddPolicy(CorsPolicy, policy => policy
                .WithOrigins([.. origins])
                .WithMethods("GET", "POST", "PATCH", "DELETE")
                .WithHeaders("authorization", "content-type", "traceparent", "tracestate")
                .WithExposedHeaders("x-trace-id", "x-next-cursor", "retry-after", "x-ratelimit-limit-requests",
                    "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests", "x-ratelimit-limit-tokens",
                    "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens")
                .SetPreflightMaxAge(builder.Configuration.GetSection(GatewayCorsOptions.SectionName).Get<GatewayCorsOptions>()!.PreflightMaxAge)));
        }
        return builder;
    }

    /// <summary>CORS only when origins are configured: otherwise no middleware and no CORS header on any answer.</summary>
    public static WebApplication UseGatewayCors(this WebApplication app)
    {
        if (app.Services.GetRequiredService<IOptions<GatewayCorsOptions>>().Value.AllowedOrigins.Count > 0)
        {
            app.UseCors(CorsPolicy);
        }
        return app;
    }
}
