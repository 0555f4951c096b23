using System.Net;
using Microsoft.Extensions.Options;

namespace ModelGateway.Realtime.Sessions;

/// <summary>Configuration of the realtime endpoint (section <c>Realtime</c>). Validated at start-up.</summary>
public sealed class RealtimeOptions
{
    public const string SectionName = "Realtime";

    /// <summary>Base address of the Api (key validation and chat). Default <c>http://api</c>, resolved by service discovery.</summary>
    public string ApiBaseUrl { get; set; } = "http://api";

    /// <summary>
    /// Addresses advertised as ICE host candidates: what browsers can reach this process on. No default:
    /// appsettings.Development.json sets 127.0.0.1; a deployment must set its reachable address(es).
    /// </summary>
    public List<string> CandidateAddresses { get; set; } = [];

    /// <summary>Address the sessions' UDP sockets bind to. Default <c>0.0.0.0</c> (all IPv4 interfaces).</summary>
    public string BindAddress { get; set; } = "0.0.0.0";

    /// <summary>First UDP port for sessions; 0 (default) lets the OS choose an ephemeral port.</summary>
    public int UdpPortMin { get; set; }

    /// <summary>Last UDP port for sessions (inclusive); 0 (default) with <see cref="UdpPortMin"/> 0.</summary>
    public int UdpPortMax { get; set; }

    /// <summary>Sessions open at once in this process. Default 500.</summary>
    public int MaxSessions { get; set; } = 500;

    /// <summary>Largest message accepted on a channel and advertised as a=max-message-size. Default 256 KiB.</summary>
    public int MaxMessageBytes { get; set; } = 256 * 1024;

    /// <summary>Sustained chat requests per second per session. Default 5.</summary>
    public double MessagesPerSecond { get; set; } = 5;

    /// <summary>Requests a session may send in a burst above the sustained rate. Default 20.</summary>
    public int MessageBurst { get; set; } = 20;

    /// <summary>Chat requests in flight at once on one session. Default 8.</summary>
    public int MaxConcurrentRequestsPerSession { get; set; } = 8;

    /// <summary>A session with no channel message and no request in flight for this long is closed. Default 10 minutes.</summary>
    public TimeSpan IdleTimeout { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>RFC 7675 §5.1: consent is lost 30 s after the last valid check from the browser. Default 30 s.</summary>
    public TimeSpan ConsentTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>From answer to an open SCTP association; a session that does not get there is closed. Default 30 s.</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How often sessions are checked against the timeouts above. Default 1 s.</summary>
    public TimeSpan ReapInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How long a key the Api accepted (or refused) is remembered. Default 30 s.</summary>
    public TimeSpan KeyCacheDuration { get; set; } = TimeSpan.FromSeconds(30);

    internal IReadOnlyList<IPAddress> ParsedCandidateAddresses() => CandidateAddresses.Select(IPAddress.Parse).ToList();
}

internal sealed class RealtimeOptionsValidator : IValidateOptions<RealtimeOptions>
{
    public ValidateOptionsResult Validate(string? name, RealtimeOptions o)
    {
        var errors = new List<string>();
        if (!Uri.TryCreate(o.ApiBaseUrl, UriKind.Absolute, out _))
        {
            errors.Add("Realtime:ApiBaseUrl must be an absolute URL.");
        }
        if (o.CandidateAddresses.Count == 0)
        {
            errors.Add("Realtime:CandidateAddresses must name at least one address browsers can reach (127.0.0.1 for local use).");
        }
        foreach (var a in o.CandidateAddresses)
        {
            if (!IPAddress.TryParse(a, out var ip) || ip.Equals(IPAddress.Any) || ip.Equals(IPAddress.IPv6Any))
            {
                errors.Add($"Realtime:CandidateAddresses: '{a}' is not a usable IP address.");
            }
        }
        if (!IPAddress.TryParse(o.BindAddress, out _))
        {
            errors.Add("Realtime:BindAddress must be an IP address.");
        }
        if (o.UdpPortMin is < 0 or > 65535 || o.UdpPortMax is < 0 or > 65535 || o.UdpPortMax < o.UdpPortMin)
        {
            errors.Add("Realtime:UdpPortMin..UdpPortMax must be a port range (0..0 for ephemeral ports).");
        }
        if (o.MaxSessions < 1)
        {
            errors.Add("Realtime:MaxSessions must be at least 1.");
        }
        if (o.MaxMessageBytes is < 1024 or > 16 * 1024 * 1024)
        {
            errors.Add("Realtime:MaxMessageBytes must be between 1 KiB and 16 MiB.");
        }
        if (o.MessagesPerSecond <= 0 || o.MessageBurst < 1 || o.MaxConcurrentRequestsPerSession < 1)
        {
            errors.Add("Realtime:MessagesPerSecond, MessageBurst and MaxConcurrentRequestsPerSession must be positive.");
        }
        foreach (var (key, value) in new[]
                 {
                     ("IdleTimeout", o.IdleTimeout), ("ConsentTimeout", o.ConsentTimeout), ("ConnectTimeout", o.ConnectTimeout),
                     ("ReapInterval", o.ReapInterval), ("KeyCacheDuration", o.KeyCacheDuration),
                 })
        {
            if (value <= TimeSpan.Zero)
            {
                errors.Add($"Realtime:{key} must be positive.");
            }
        }
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
