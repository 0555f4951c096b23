using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using ModelGateway.Api.Admin;
using ModelGateway.Api.Budgets;
using ModelGateway.Api.ChatCompletions;
using ModelGateway.Api.Configuration;
using ModelGateway.Api.FrontDoor;
using ModelGateway.Api.Providers;
using ModelGateway.Api.Providers.OpenAICompatible;
using ModelGateway.Api.Routing;
using ModelGateway.Api.Storage;
using ModelGateway.Api.StructuredOutput;
using ModelGateway.Api.Tenancy;
using ModelGateway.Api.Tracing;
using ModelGateway.Policy.Rules.Client;

namespace ModelGateway.Api.Hosting;

/// <summary>Registration of the gateway's features; Program.cs calls these and nothing else.</summary>
internal static class GatewayExtensions
{
    public static IHostApplicationBuilder AddGateway(this IHostApplicationBuilder builder)
    {
        builder.ValidateProductionSettings(); // outside Development: one failure listing every missing setting (docs/deploy.md)
        builder.Services.TryAddSingleton(TimeProvider.System);

        builder.Services.AddOptions<GatewayOptions>()
            .Bind(builder.Configuration.GetSection(GatewayOptions.SectionName))
            .ValidateDataAnnotations()
            .ValidateOnStart();
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<GatewayOptions>, GatewayOptionsValidator>());
        builder.Services.AddOptions<TenancyOptions>()
            .Bind(builder.Configuration.GetSection(TenancyOptions.SectionName))
            .ValidateDataAnnotations()
            .ValidateOnStart();

        builder.AddServerLimits(); // Kestrel limits (slowloris, idle connections), graceful drain, CORS
        builder.Services.AddOptions<RuntimeOptions>().Bind(builder.Configuration.GetSection(RuntimeOptions.SectionName))
            .ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddHostedService<BackgroundGcKeeper>(); // gen2 collections stay background ones on one CPU

        // Storage: Aspire's clients bring connection resilience, health checks and telemetry.
        builder.AddNpgsqlDataSource("postgres", configureDataSourceBuilder: db => PostgresData.Tune(db.ConnectionStringBuilder));
        // Redis tracing: the gateway spans its own scripts (Budgets/RedisScript.cs) instead of the instrumentation's
        // profiling sessions, which hold every traced request's Activity for 10 s (peak RSS ~400 MB under load, not ~230).
        builder.AddRedisClient("redis", settings => settings.DisableTracing = true, configureOptions: redis =>
        {
            // While Redis is down, commands fail at once instead of queueing until they time out: admission answers (503,
            // or the local fail-open limit) in microseconds rather than holding every request for seconds.
            redis.BacklogPolicy = StackExchange.Redis.BacklogPolicy.FailFast;
            // Reconnect attempts start quickly and back off to 5 s, so a restarted Redis is used again within seconds.
            redis.ReconnectRetryPolicy = new StackExchange.Redis.ExponentialRetry(250, 5000);
            // Replies complete on the .NET thread pool, not on the client's own dedicated I/O threads: one thread hop and
            // one context switch less per command on a small machine (bench/run.sh, docs/benchmark.md).
            redis.SocketManager = StackExchange.Redis.SocketManager.ThreadPool;
        });

        builder.Services.TryAddSingleton<TenantStore>();

        // Policy: built-in rules in process, OPA tenants through the Policy service.
        builder.AddPolicyClient();
        builder.Services.TryAddSingleton<Tokenization.ITokenCounter, Tokenization.TokenCounter>();
        builder.Services.TryAddSingleton<Policy.PolicyGate>();
        builder.Services.AddHostedService<TenancyStartup>();
        builder.AddBudgets(); // admission, settlement, usage ledger, flood guard (after TenancyStartup: the ledger needs the schema)
        builder.AddTraceHistory(); // trace history: durable writer, retention, reads (after TenancyStartup: the schema)

        // Providers: one adapter per wire protocol.
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IProviderAdapter, OpenAICompatibleAdapter>());
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IProviderAdapter, Providers.Anthropic.AnthropicAdapter>());
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IProviderAdapter, Providers.LlamaCpp.LlamaCppAdapter>());
        builder.Services.TryAddSingleton<RouteTable>();
        builder.Services.TryAddSingleton<TargetHealth>();
        builder.Services.TryAddSingleton<ModelRouter>();
        builder.AddStructuredOutput(); // response_format / response_schema: schema cache and the output guard
        builder.Services.TryAddSingleton<ChatCompletionsApi.Services>();
        builder.Services.AddFrontDoor();

        // Provider calls are long streaming POSTs: no resilience handler (it retries and cuts at 10 s), no redirects,
        // cookies, proxy or decompression; the router owns retries and timeouts (YARP's outbound handler is the model).
        builder.Services.AddHttpClient(ModelRouter.ProviderHttpClient, c => c.Timeout = Timeout.InfiniteTimeSpan)
            .ConfigurePrimaryHttpMessageHandler(ProviderHttp.CreateHandler)
            .SetHandlerLifetime(Timeout.InfiniteTimeSpan)
            // Per-request cost that buys nothing here (issue 9: measured in allocations per request): the factory's logging
            // handlers (a log scope and a redacted URI string per call; the access log and the attempt spans say it all), and
            // service discovery, which resolves and rewrites every request's URI although provider base URLs are concrete
            // (an operator's OpenRouter/Anthropic/llama.cpp address, or the fake upstream's endpoint the AppHost passes in).
            .RemoveAllLoggers()
            .ConfigureAdditionalHttpMessageHandlers((handlers, _) =>
            {
                for (var i = handlers.Count - 1; i >= 0; i--)
                {
                    // The handler type is internal to Microsoft.Extensions.ServiceDiscovery; a test checks the chain.
                    if (handlers[i].GetType().FullName == ServiceDiscoveryHandlerType)
                    {
                        handlers.RemoveAt(i);
                    }
                }
            });

        return builder;
    }

    /// <summary>The HTTP handler service discovery adds to every client (internal to its package, so named).</summary>
    internal const string ServiceDiscoveryHandlerType = "Microsoft.Extensions.ServiceDiscovery.Http.ResolvingHttpDelegatingHandler";

    public static WebApplication MapGateway(this WebApplication app)
    {
        app.UseMiddleware<AccessLogMiddleware>(); // outermost: logs the status the client got
        app.UseMiddleware<ResponseHeadersMiddleware>();
        app.UseGatewayCors(); // only when Cors:AllowedOrigins lists origins
        // An unexpected exception still answers in the OpenAI envelope (SDKs parse it), without internals. A storage outage
        // the request could not get around is a 503 (retry), not a 500.
        app.UseExceptionHandler(errorApp => errorApp.Run(context =>
        {
            var error = context.Features.Get<Microsoft.AspNetCore.Diagnostics.IExceptionHandlerFeature>()?.Error;
            return (error is Npgsql.NpgsqlException or StackExchange.Redis.RedisException
                    ? new Errors.OpenAIError(503, "A store the gateway depends on is unavailable; retry shortly.", "api_error", null, "storage_unavailable")
                    : new Errors.OpenAIError(500, "The gateway failed to process the request; it has been logged.", "api_error", null, "internal_error"))
                .WriteResponseAsync(context);
        }));
        app.UseMiddleware<ShutdownDrainMiddleware>();
        app.MapGet("/health", (TimeProvider time) => TypedResults.Ok(new HealthResponse(true, time.GetUtcNow())));
        app.MapChatCompletionsApi();
        app.MapAdminApi();
        app.MapTenantReadApi();
        app.MapTracesApi();
        app.MapFrontDoorApi(app.Configuration);
        return app;
    }

    /// <summary>The original gateway's <c>GET /health</c> shape.</summary>
    internal sealed record HealthResponse(bool Ok, DateTimeOffset Time);
}
