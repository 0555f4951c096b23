using System.ComponentModel.DataAnnotations;

namespace ModelGateway.Api.Hosting;

/// <summary>
/// Section <c>Server</c>: connection limits against abusive clients and the graceful-shutdown budget. Applied to Kestrel
/// (https://learn.microsoft.com/aspnet/core/fundamentals/servers/kestrel/options) and to the host's shutdown timeout.
/// </summary>
public sealed class ServerLimitsOptions
{
    public const string SectionName = "Server";

    /// <summary>
    /// Time a client has to send the request line and headers (default 10 s; Kestrel's own default is 30 s). A client that
    /// trickles headers (slowloris) is disconnected when it runs out.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:10:00")]
    public TimeSpan RequestHeadersTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How long an idle keep-alive connection is kept open (default 60 s; Kestrel's own default is 130 s).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan KeepAliveTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Open connections per replica (default 10 000); beyond it new connections are closed at once. Zero: no limit.</summary>
    [Range(0, 10_000_000)]
    public long MaxConcurrentConnections { get; set; } = 10_000;

    /// <summary>
    /// On shutdown, how long requests in flight may take to finish (default 25 s). Streams still running then end with an
    /// OpenAI error event (<c>server_shutting_down</c>) and are billed for what they produced.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "01:00:00")]
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromSeconds(25);

    /// <summary>After the drain, how long the ledger and trace writers may take to store what they hold (default 10 s).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:10:00")]
    public TimeSpan FlushTimeout { get; set; } = TimeSpan.FromSeconds(10);
}

/// <summary>Section <c>Cors</c>: browser cross-origin access. Off unless origins are listed.</summary>
public sealed class GatewayCorsOptions
{
    public const string SectionName = "Cors";

    /// <summary>
    /// Origins (scheme://host[:port]) whose browser pages may call the gateway; empty (the default) sends no CORS headers
    /// at all, so browsers keep other sites' pages from reading answers. Never <c>*</c>: callers send API keys.
    /// </summary>
    public List<string> AllowedOrigins { get; set; } = [];

    /// <summary>How long a browser may cache a preflight answer (default 10 min).</summary>
    [Range(typeof(TimeSpan), "00:00:00", "1.00:00:00")]
    public TimeSpan PreflightMaxAge { get; set; } = TimeSpan.FromMinutes(10);
}
