using System.Diagnostics;

namespace ModelGateway.Api.Hosting;

/// <summary>
/// Headers on every response: <c>x-trace-id</c> (the W3C trace id of this request, as the original gateway returned)
/// and the security headers an API should send (no sniffing, no framing, no referrer, no caching of answers).
/// </summary>
internal sealed class ResponseHeadersMiddleware(RequestDelegate next)
{
    public Task InvokeAsync(HttpContext context)
    {
        context.Response.OnStarting(static state =>
        {
            var ctx = (HttpContext)state;
            var headers = ctx.Response.Headers;
            headers["x-trace-id"] = Tracing.W3CTraceId.TextOf(ctx);
            headers.XContentTypeOptions = "nosniff";
            headers.XFrameOptions = "DENY";
            headers["Referrer-Policy"] = "no-referrer";
            headers.ContentSecurityPolicy = "default-src 'none'; frame-ancestors 'none'";
            headers["Cross-Origin-Resource-Policy"] = "same-origin";
            if (!headers.ContainsKey("Cache-Control"))
            {
                headers.CacheControl = "no-store";
            }
            return Task.CompletedTask;
        }, context);
        return next(context);
    }
}
