using System.Diagnostics;

namespace ModelGateway.Api.Hosting;

/// <summary>What handlers add to a request's access log line once they know it (tenant after authentication, alias after parsing).</summary>
internal sealed class AccessLogFeature
{
    public string? Tenant { get; set; }

    public string? Alias { get; set; }
}

/// <summary>
/// One structured line per request, as the original gateway's request logging wrote: method, path (never the query
/// string), status, latency, tenant, alias and trace id. Never keys, headers or content. Outermost, so the status is the
/// one the client got (after the exception handler) and a stream's latency covers the whole stream.
/// </summary>
internal sealed partial class AccessLogMiddleware(RequestDelegate next, ILogger<AccessLogMiddleware> logger)
{
    public async Task InvokeAsync(HttpContext context)
    {
        var started = Stopwatch.GetTimestamp();
        var feature = new AccessLogFeature();
        context.Features.Set(feature);
        try
        {
            await next(context);
        }
        finally
        {
            if (logger.IsEnabled(LogLevel.Information))
            {
                LogRequest(logger, context.Request.Method, context.Request.Path.Value ?? "", context.Response.StatusCode,
                    Math.Round(Stopwatch.GetElapsedTime(started).TotalMilliseconds, 1), feature.Tenant, feature.Alias,
                    Tracing.W3CTraceId.TextOf(context));
            }
        }
    }

    [LoggerMessage(EventId = 1, EventName = "AccessLog", Level = LogLevel.Information,
        Message = "{Method} {Path} {StatusCode} in {LatencyMs} ms (tenant {Tenant}, alias {Alias}, trace {TraceId})")]
    private static partial void LogRequest(ILogger logger, string method, string path, int statusCode, double latencyMs, string? tenant,
        string? alias, string traceId);
}
