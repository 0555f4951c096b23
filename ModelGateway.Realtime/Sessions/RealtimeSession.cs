using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using ModelGateway.Realtime.Chat;
using ModelGateway.Realtime.DataChannels;
using ModelGateway.Realtime.Dtls;
using ModelGateway.Realtime.Ice;
using ModelGateway.Realtime.Sctp;
using ModelGateway.Realtime.Signalling;
using Org.BouncyCastle.Security;
using Org.BouncyCastle.Tls;
using Org.BouncyCastle.Tls.Crypto.Impl.BC;

namespace ModelGateway.Realtime.Sessions;

internal enum SessionPhase
{
    /// <summary>Answer sent; waiting for ICE, DTLS and SCTP.</summary>
    Connecting,
    /// <summary>The SCTP association is up.</summary>
    Open,
    Closed,
}

/// <summary>
/// One browser peer connection. The stack, bottom up:
/// 1. a UDP socket of its own (see <see cref="SessionManager"/> for why);
/// 2. demultiplexing by first byte (RFC 7983 §7): STUN to the ICE-lite agent, DTLS to BouncyCastle;
/// 3. DTLS 1.2 server on a dedicated thread (BouncyCastle's API is blocking), which then reads
///    records and feeds them to
/// 4. the SCTP association, whose messages go to
/// 5. DCEP (channel open / ack) and the chat relay.
/// Closing tears the stack down top to bottom; every path out (ABORT, consent loss, timeouts,
/// errors, shutdown) goes through <see cref="Close"/>.
/// </summary>
internal sealed partial class RealtimeSession
{
    private readonly Socket _socket;
    private readonly IceLiteAgent _ice;
    private readonly IceDatagramTransport _transport;
    private readonly DtlsCertificate _certificate;
    private readonly StateCookieSigner _cookies;
    private readonly SdpOffer _offer;
    private readonly RealtimeOptions _options;
    private readonly RealtimeTelemetry _telemetry;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Action<RealtimeSession, string> _onClosed;
    private readonly CancellationTokenSource _closing = new();
    private readonly Lock _sendGate = new();
    private readonly long _created;
    private readonly Activity? _activity;
    private DtlsTransport? _dtls;
    private SctpAssociation? _sctp;
    private int _closed;
    private int _channelsOpened;

    public RealtimeSession(
        string id,
        Socket socket,
        SdpOffer offer,
        IApiClient api,
        string apiKey,
        DtlsCertificate certificate,
        StateCookieSigner cookies,
        RealtimeOptions options,
        RealtimeTelemetry telemetry,
        TimeProvider time,
        ILogger logger,
        Action<RealtimeSession, string> onClosed)
    {
        Id = id;
        _socket = socket;
        _offer = offer;
        _certificate = certificate;
        _cookies = cookies;
        _options = options;
        _telemetry = telemetry;
        _time = time;
        _logger = logger;
        _onClosed = onClosed;
        _created = time.GetTimestamp();
        LocalCredentials = IceCredentials.Generate();
        _ice = new IceLiteAgent(LocalCredentials, offer.IceUfrag, time);
        _transport = new IceDatagramTransport(socket, () => _ice.SelectedRemote);
        // The session span lives as long as the peer connection; each chat request on it is a child,
        // so one trace shows a session's whole life.
        // It starts under the offer's request span but must not become the caller's current span.
        var caller = Activity.Current;
        _activity = RealtimeTelemetry.ActivitySource.StartActivity("realtime session", ActivityKind.Server);
        _activity?.SetTag("realtime.session.id", id);
        Activity.Current = caller;
        Relay = new ChatRelay(api, apiKey, id, options, telemetry, time, logger, _activity?.Context ?? default, _closing.Token);
    }

    public string Id { get; }
    public IceCredentials LocalCredentials { get; }
    public ChatRelay Relay { get; }
    public SessionPhase Phase { get; private set; } = SessionPhase.Connecting;
    public string? CloseReason { get; private set; }
    public IPEndPoint LocalEndPoint => (IPEndPoint)_socket.LocalEndPoint!;
    public IPEndPoint? RemoteEndPoint => _ice.SelectedRemote;

    public void Start()
    {
        // The loops outlive the offer request: they must not carry its execution context (current span, scope).
        using (ExecutionContext.SuppressFlow())
        {
            _ = Task.Run(ReceiveLoopAsync);
            new Thread(RunDtls) { IsBackground = true, Name = "realtime-dtls-" + Id[..8] }.Start();
        }
    }

    /// <summary>Why the session should end now, or null: connect, consent (RFC 7675) and idle timeouts.</summary>
    public string? CheckTimeouts()
    {
        if (Phase == SessionPhase.Connecting && _time.GetElapsedTime(_created) > _options.ConnectTimeout)
        {
            return "connect timeout";
        }
        if (_ice.SelectedRemote is not null && _ice.SinceLastConsent > _options.ConsentTimeout)
        {
            return "consent lost";
        }
        if (Phase == SessionPhase.Open && Relay.Idle > _options.IdleTimeout)
        {
            return "idle timeout";
        }
        return null;
    }

    public void Close(string reason)
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0)
        {
            return;
        }
        CloseReason = reason;
        Phase = SessionPhase.Closed;
        _closing.Cancel();
        try
        {
            _sctp?.Abort(reason);
            _sctp?.Dispose();
            if (_dtls is not null)
            {
                lock (_sendGate)
                {
                    _dtls.Close();
                }
            }
        }
        catch (Exception e) when (e is IOException or TlsException or ObjectDisposedException)
        {
            // The peer may be gone already: nothing to tell it.
        }
        _transport.Close();
        _socket.Dispose();
        _activity?.SetTag("realtime.close.reason", reason);
        _activity?.Dispose();
        LogClosed(_logger, Id, reason);
        _onClosed(this, reason);
    }

    private async Task ReceiveLoopAsync()
    {
        var buffer = GC.AllocateUninitializedArray<byte>(2048);
        EndPoint any = new IPEndPoint(_socket.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, 0);
        while (!_closing.IsCancellationRequested)
        {
            SocketReceiveFromResult received;
            try
            {
                received = await _socket.ReceiveFromAsync(buffer, SocketFlags.None, any, _closing.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            catch (SocketException)
            {
                continue; // ICMP errors surface here on some platforms; UDP carries on.
            }
            var from = (IPEndPoint)received.RemoteEndPoint;
            var datagram = buffer.AsSpan(0, received.ReceivedBytes);
            if (datagram.Length == 0)
            {
                continue;
            }
            var first = datagram[0];
            if (first < 4)
            {
                if (StunMessage.TryParse(datagram) is { } stun)
                {
                    var outcome = _ice.Handle(stun, from, out var response);
                    if (response is not null)
                    {
                        try
                        {
                            _socket.SendTo(response, from);
                        }
                        catch (SocketException)
                        {
                        }
                        catch (ObjectDisposedException)
                        {
                            return;
                        }
                    }
                    if (outcome == StunOutcome.Rejected)
                    {
                        LogStunRejected(_logger, Id);
                    }
                }
            }
            else if (first is >= 20 and <= 63 && from.Equals(_ice.SelectedRemote))
            {
                // RFC 7983 §7: 20..63 is DTLS. Only the address ICE validated may speak DTLS to us.
                _transport.Enqueue(datagram.ToArray());
            }
        }
    }

    private void RunDtls()
    {
        try
        {
            var crypto = new BcTlsCrypto(new SecureRandom());
            var server = new WebRtcDtlsServer(crypto, _certificate, _offer.Fingerprint, (int)_options.ConnectTimeout.TotalMilliseconds);
            var dtls = new DtlsServerProtocol().Accept(server, _transport);
            _dtls = dtls;
            if (_closed != 0)
            {
                return;
            }
            LogDtlsConnected(_logger, Id, _time.GetElapsedTime(_created).TotalMilliseconds);

            var settings = new SctpSettings { MaxPacketSize = dtls.GetSendLimit() };
            var sctp = new SctpAssociation(SendRecord, _cookies, _time, settings);
            var channels = new DataChannelHost(sctp);
            channels.ChannelOpened += OnChannelOpened;
            channels.MessageReceived += Relay.OnMessage;
            sctp.MessageReceived += channels.OnMessage;
            sctp.Established += () => Phase = SessionPhase.Open;
            sctp.Closed += reason => Close("sctp: " + reason);
            _sctp = sctp;

            var record = new byte[dtls.GetReceiveLimit()];
            while (!_closing.IsCancellationRequested)
            {
                var n = dtls.Receive(record, 0, record.Length, 250);
                if (n > 0)
                {
                    sctp.HandlePacket(record.AsSpan(0, n));
                }
            }
        }
        catch (Exception e)
        {
            // Whatever failed (the peer, or a bug of ours), it ends this session, never the process.
            if (_closed == 0)
            {
                LogDtlsFailed(_logger, e, Id);
                Close(e is TlsFatalAlertReceived { AlertDescription: AlertDescription.close_notify } ? "dtls close_notify" : "dtls failure");
            }
        }
    }

    private void SendRecord(byte[] packet)
    {
        try
        {
            lock (_sendGate)
            {
                // BouncyCastle's DtlsTransport is not safe for concurrent sends; the relay, the receive
                // thread and the SCTP timer all send, so they take turns here.
                _dtls?.Send(packet, 0, packet.Length);
            }
        }
        catch (Exception e) when (e is IOException or TlsException or ObjectDisposedException)
        {
            if (_closed == 0)
            {
                LogDtlsFailed(_logger, e, Id);
            }
        }
    }

    private void OnChannelOpened(DataChannel channel)
    {
        if (Interlocked.Increment(ref _channelsOpened) == 1)
        {
            var setup = _time.GetElapsedTime(_created);
            _telemetry.SetupDuration.Record(setup.TotalSeconds);
            LogChannelOpened(_logger, Id, channel.Label, setup.TotalMilliseconds);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Realtime session {SessionId} closed: {Reason}")]
    private static partial void LogClosed(ILogger logger, string sessionId, string reason);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Realtime session {SessionId}: STUN check rejected")]
    private static partial void LogStunRejected(ILogger logger, string sessionId);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Realtime session {SessionId}: DTLS connected after {ElapsedMs} ms")]
    private static partial void LogDtlsConnected(ILogger logger, string sessionId, double elapsedMs);

    [LoggerMessage(Level = LogLevel.Information, Message = "Realtime session {SessionId}: channel '{Label}' open after {ElapsedMs} ms")]
    private static partial void LogChannelOpened(ILogger logger, string sessionId, string label, double elapsedMs);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Realtime session {SessionId}: DTLS failed")]
    private static partial void LogDtlsFailed(ILogger logger, Exception exception, string sessionId);
}
