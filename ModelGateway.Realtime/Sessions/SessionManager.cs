using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Options;
using ModelGateway.Realtime.Chat;
using ModelGateway.Realtime.Dtls;
using ModelGateway.Realtime.Sctp;
using ModelGateway.Realtime.Signalling;

namespace ModelGateway.Realtime.Sessions;

internal enum CreateOutcome
{
    Created,
    TooManySessions,
    NoPort,
}

/// <summary>
/// Creates, tracks and ends sessions. Each session gets a UDP socket of its own rather than one shared
/// socket demultiplexed by ICE ufrag and source address: the socket then is the session (closing it ends
/// every packet path at once), a misbehaving peer cannot touch another session's state, and no lookup
/// sits on the per-packet path. The cost is one port per session, bounded by MaxSessions and, for
/// firewalls, confinable with UdpPortMin..UdpPortMax. Behind NAT or a firewall, TURN is the path that
/// needs no open port range at all.
/// </summary>
internal sealed partial class SessionManager(
    IOptions<RealtimeOptions> options,
    IServiceProvider services,
    DtlsCertificate certificate,
    StateCookieSigner cookies,
    RealtimeTelemetry telemetry,
    TimeProvider time,
    ILogger<SessionManager> logger) : IDisposable
{
    private readonly ConcurrentDictionary<string, RealtimeSession> _sessions = new();
    private readonly IReadOnlyList<IPAddress> _candidates = options.Value.ParsedCandidateAddresses();
    private int _count;
    private int _nextPort;

    public int Count => Volatile.Read(ref _count);

    public IEnumerable<RealtimeSession> Sessions => _sessions.Values;

    public RealtimeSession? Find(string id) => _sessions.GetValueOrDefault(id);

    public CreateOutcome TryCreate(SdpOffer offer, string apiKey, out RealtimeSession? session, out string? answer)
    {
        session = null;
        answer = null;
        var o = options.Value;
        if (Interlocked.Increment(ref _count) > o.MaxSessions)
        {
            Interlocked.Decrement(ref _count);
            return CreateOutcome.TooManySessions;
        }
        var socket = Bind(o);
        if (socket is null)
        {
            Interlocked.Decrement(ref _count);
            return CreateOutcome.NoPort;
        }
        var id = Guid.NewGuid().ToString("n");
        var port = ((IPEndPoint)socket.LocalEndPoint!).Port;
        session = new RealtimeSession(id, socket, offer, services.GetRequiredService<IApiClient>(), apiKey, certificate, cookies,
            o, telemetry, time, logger, OnClosed);
        answer = SdpAnswer.Create(offer, new SdpAnswerParameters(
            session.LocalCredentials.Ufrag,
            session.LocalCredentials.Password,
            certificate.Fingerprint,
            _candidates.Select(a => new IPEndPoint(a, port)).ToList(),
            o.MaxMessageBytes));
        _sessions[id] = session;
        telemetry.SessionsStarted.Add(1);
        telemetry.ActiveSessions.Add(1);
        session.Start();
        LogCreated(logger, id, port);
        return CreateOutcome.Created;
    }

    /// <summary>Closes the sessions whose connect, consent or idle timeout has passed.</summary>
    public void Reap()
    {
        foreach (var session in _sessions.Values)
        {
            if (session.CheckTimeouts() is { } reason)
            {
                session.Close(reason);
            }
        }
    }

    public void Dispose()
    {
        foreach (var session in _sessions.Values)
        {
            session.Close("shutdown");
        }
    }

    private void OnClosed(RealtimeSession session, string reason)
    {
        if (_sessions.TryRemove(session.Id, out _))
        {
            Interlocked.Decrement(ref _count);
            telemetry.ActiveSessions.Add(-1);
            telemetry.SessionsEnded.Add(1, new KeyValuePair<string, object?>("reason", reason));
        }
    }

    private Socket? Bind(RealtimeOptions o)
    {
        var address = IPAddress.Parse(o.BindAddress);
        if (o.UdpPortMax == 0)
        {
            return TryBind(address, 0);
        }
        var range = o.UdpPortMax - o.UdpPortMin + 1;
        for (var i = 0; i < range; i++)
        {
            var port = o.UdpPortMin + (int)((uint)Interlocked.Increment(ref _nextPort) % (uint)range);
            if (TryBind(address, port) is { } socket)
            {
                return socket;
            }
        }
        return null;
    }

    private static Socket? TryBind(IPAddress address, int port)
    {
        var socket = new Socket(address.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            socket.Bind(new IPEndPoint(address, port));
            return socket;
        }
        catch (SocketException)
        {
            socket.Dispose();
            return null;
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Realtime session {SessionId} created on UDP port {Port}")]
    private static partial void LogCreated(ILogger logger, string sessionId, int port);
}

/// <summary>Checks sessions against their timeouts every <see cref="RealtimeOptions.ReapInterval"/>.</summary>
internal sealed class SessionReaper(SessionManager sessions, IOptions<RealtimeOptions> options, TimeProvider time) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.ReapInterval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                sessions.Reap();
            }
        }
        catch (OperationCanceledException)
        {
        }
        sessions.Dispose();
    }
}
