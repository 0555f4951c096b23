using System.Globalization;
using ModelGateway.FakeUpstream.Chat;

namespace ModelGateway.FakeUpstream.Faults;

/// <summary>
/// The faults that replace an answer or delay it, applied before any reply is built. The faults that
/// change an answer as it is streamed live in <see cref="SseWriter"/> and <see cref="ReplyBuilder"/>.
/// </summary>
internal static class FaultInjector
{
    /// <summary>Returns true when the fault has answered (or refused to answer) the request.</summary>
    public static async Task<bool> TryAnswerAsync(HttpContext context, IChatProtocol protocol, Fault fault, string model)
    {
        var services = context.RequestServices;
        switch (fault.Kind)
        {
            case FaultKind.ConnectionReset:
                context.Abort();
                return true;

            case FaultKind.Hang:
                await HangAsync(context, services);
                return true;

            case FaultKind.HostileHeaders:
                AddHostileHeaders(context);
                return false;

            case FaultKind.SlowFirstToken:
                // Before anything, headers included: the client waits for its first byte.
                await Task.Delay(TimeSpan.FromMilliseconds(fault.Value), services.GetRequiredService<TimeProvider>(), context.RequestAborted);
                return false;

            case FaultKind.Status500:
                await protocol.WriteErrorAsync(context, new ProtocolError(ErrorKind.Server, "The server had an error while processing your request (fault-500)."));
                return true;

            case FaultKind.Status503:
                await protocol.WriteErrorAsync(context, new ProtocolError(ErrorKind.Overloaded, "The server is overloaded (fault-503)."));
                return true;

            case FaultKind.Status429:
                // Providers send retry-after in seconds (RFC 9110 §10.2.3); clients and the gateway honour it.
                context.Response.Headers.RetryAfter = fault.Value.ToString(CultureInfo.InvariantCulture);
                await protocol.WriteErrorAsync(context, new ProtocolError(ErrorKind.RateLimit, "Rate limit reached for requests (fault-429).", Code: "rate_limit_exceeded"));
                return true;

            case FaultKind.Status400:
                await protocol.WriteErrorAsync(context, new ProtocolError(ErrorKind.InvalidRequest, "Invalid request (fault-400)."));
                return true;

            case FaultKind.Status401:
                await protocol.WriteErrorAsync(context, new ProtocolError(ErrorKind.Authentication, "Incorrect API key provided (fault-401).", Code: "invalid_api_key"));
                return true;

            case FaultKind.FailFirst:
                var call = services.GetRequiredService<FaultCounters>().Increment(model);
                if (call > fault.Value)
                {
                    return false;
                }
                await protocol.WriteErrorAsync(context, new ProtocolError(ErrorKind.Server,
                    string.Create(CultureInfo.InvariantCulture, $"The server had an error while processing your request (fault-fail-first: call {call} of {fault.Value}).")));
                return true;

            case FaultKind.RateLimitFirst:
                // A rate limit that lifts: what a client honouring retry-after should get past on its retry.
                var attempt = services.GetRequiredService<FaultCounters>().Increment(model);
                if (attempt > fault.Value)
                {
                    return false;
                }
                context.Response.Headers.RetryAfter = "1";
                await protocol.WriteErrorAsync(context, new ProtocolError(ErrorKind.RateLimit,
                    string.Create(CultureInfo.InvariantCulture, $"Rate limit reached for requests (fault-429-first: call {attempt} of {fault.Value})."),
                    Code: "rate_limit_exceeded"));
                return true;

            default:
                return false;
        }
    }

    /// <summary>
    /// fault-cut-stream and fault-malformed-chunk on a non-streamed request: the body breaks off
    /// (cut: the connection is aborted) or is not valid JSON (malformed).
    /// </summary>
    public static async Task<bool> TryBreakBodyAsync(HttpContext context, Fault fault)
    {
        if (fault.Kind is not (FaultKind.CutStream or FaultKind.MalformedChunk))
        {
            return false;
        }
        context.Response.StatusCode = StatusCodes.Status200OK;
        context.Response.ContentType = "application/json";
        await context.Response.BodyWriter.WriteAsync("{\"id\":\"fake\",\"object\":"u8.ToArray(), context.RequestAborted);
        await context.Response.BodyWriter.FlushAsync(context.RequestAborted);
        if (fault.Kind == FaultKind.CutStream)
        {
            context.Abort();
        }
        return true;
    }

    /// <summary>
    /// Response headers a compromised or careless provider might send, plus echoes of the credentials the fake received
    /// (so a test can prove none of them reaches the gateway's client). The answer itself is normal.
    /// </summary>
    private static void AddHostileHeaders(HttpContext context)
    {
        var headers = context.Response.Headers;
        headers.SetCookie = "session=stolen-by-upstream; Path=/; HttpOnly";
        headers.AccessControlAllowOrigin = "*";
        headers.AccessControlAllowCredentials = "true";
        headers.WWWAuthenticate = "Basic realm=\"upstream\"";
        headers.ProxyAuthenticate = "Basic realm=\"upstream-proxy\"";
        headers.Location = "http://evil.example/phish";
        headers["Refresh"] = "0; url=http://evil.example/phish";
        headers["x-trace-id"] = "hostile-trace-id";
        headers.XFrameOptions = "ALLOWALL";
        headers.ContentSecurityPolicy = "default-src *";
        headers.StrictTransportSecurity = "max-age=0";
        headers["Keep-Alive"] = "timeout=1, max=1";
        headers["x-upstream-echo-authorization"] = context.Request.Headers.Authorization.ToString();
        headers["x-upstream-echo-api-key"] = context.Request.Headers["x-api-key"].ToString();
    }

    /// <summary>Never answers: waits until the client gives up (or the app stops, so shutdown is not held).</summary>
    private static async Task HangAsync(HttpContext context, IServiceProvider services)
    {
        var stopping = services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping;
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, stopping);
        try
        {
            await Task.Delay(Timeout.InfiniteTimeSpan, services.GetRequiredService<TimeProvider>(), linked.Token);
        }
        catch (OperationCanceledException)
        {
            // Never a normal (empty) answer, even if the client is still there when the app stops.
            context.Abort();
        }
    }
}
