using System.Buffers.Binary;
using System.Security.Cryptography;

namespace ModelGateway.Realtime.Sctp;

internal enum SctpState
{
    /// <summary>Waiting for INIT / COOKIE ECHO: we are the passive side (RFC 4960 §5.1; the browser opens).</summary>
    Closed,
    Established,
    ShutdownReceived,
    Terminated,
}

/// <summary>Tunables of one association; defaults follow RFC 4960 §15 unless noted.</summary>
internal sealed record SctpSettings
{
    /// <summary>Largest SCTP packet: what one DTLS record may carry on a 1200-byte path.</summary>
    public int MaxPacketSize { get; init; } = 1150;

    /// <summary>Receive buffer: the a_rwnd we advertise. Several maximum-size messages fit.</summary>
    public int ReceiveWindow { get; init; } = 1024 * 1024;

    /// <summary>RFC 6298 lowered TCP's initial RTO to 1 s; WebRTC stacks do the same for SCTP.</summary>
    public TimeSpan InitialRto { get; init; } = TimeSpan.FromSeconds(1);
    public TimeSpan MinRto { get; init; } = TimeSpan.FromSeconds(1);
    public TimeSpan MaxRto { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Association.Max.Retrans: consecutive T3 expiries before we give up (RFC 4960 §8.1).</summary>
    public int MaxRetransmissions { get; init; } = 10;

    public TimeSpan TimerResolution { get; init; } = TimeSpan.FromMilliseconds(50);
}

/// <summary>
/// One SCTP association over DTLS (RFC 8261), the subset WebRTC data channels use (RFC 8831 §6):
/// passive open with a stateless signed cookie, DATA with fragmentation/reassembly, SACK with gap
/// blocks, T3-rtx and fast retransmit, slow start / congestion avoidance and the peer's receiver
/// window (RFC 4960 §6, §7), HEARTBEAT answers, ABORT and SHUTDOWN. No PR-SCTP (RFC 3758), no stream
/// reset (RFC 6525): channels stay reliable and are closed with the association.
/// Thread-safety: every entry point takes one lock; packets are handed to the sender after it is released.
/// </summary>
internal sealed class SctpAssociation : IDisposable
{
    private const ushort OurStreams = 65535;

    private readonly Action<byte[]> _sendPacket;
    private readonly StateCookieSigner _cookies;
    private readonly TimeProvider _time;
    private readonly SctpSettings _settings;
    private readonly Lock _gate = new();
    private readonly ITimer _timer;
    private readonly Queue<Outbound> _pending = new();
    private readonly List<Outbound> _inFlight = [];
    private readonly Dictionary<ushort, ushort> _nextSequence = [];
    private TaskCompletionSource _drained = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private ushort _localPort;
    private ushort _peerPort;
    private uint _localTag;
    private uint _peerTag;
    private uint _nextTsn;
    private uint _lastCumulativeAck;
    private ReceiveBuffer? _receive;

    // Congestion control and RTO state (RFC 4960 §6.3, §7.2).
    private long _peerWindow;
    private int _cwnd;
    private int _ssthresh;
    private int _partialBytesAcked;
    private int _flightBytes;
    private int _pendingBytes;
    private bool _inFastRecovery;
    private uint _fastRecoveryExit;
    private TimeSpan _rto;
    private TimeSpan _srtt;
    private TimeSpan _rttvar;
    private bool _rttMeasured;
    private long? _t3Deadline;
    private int _errorCount;
    private string? _closeReason;

    public SctpAssociation(Action<byte[]> sendPacket, StateCookieSigner cookies, TimeProvider time, SctpSettings settings)
    {
        _sendPacket = sendPacket;
        _cookies = cookies;
        _time = time;
        _settings = settings;
        _rto = settings.InitialRto;
        // RFC 4960 §7.2.1: initial cwnd = min(4*MTU, max(2*MTU, 4380)); ssthresh starts at the peer's window.
        _cwnd = Math.Min(4 * settings.MaxPacketSize, Math.Max(2 * settings.MaxPacketSize, 4380));
        _ssthresh = int.MaxValue;
        _timer = time.CreateTimer(_ => OnTimer(), null, settings.TimerResolution, settings.TimerResolution);
    }

    /// <summary>Raised on the receiving thread for each whole message, in stream order.</summary>
    public event Action<ReceivedMessage>? MessageReceived;

    public event Action? Established;

    /// <summary>Raised once, with the reason, when the association ends (ABORT, SHUTDOWN, retransmission limit, local close).</summary>
    public event Action<string>? Closed;

    public SctpState State { get; private set; }

    /// <summary>User bytes queued or in flight: what a sender should wait on before adding more.</summary>
    public int BufferedAmount
    {
        get { lock (_gate) { return _pendingBytes + _inFlight.Sum(c => c.Size); } }
    }

    public int CongestionWindow
    {
        get { lock (_gate) { return _cwnd; } }
    }

    /// <summary>User data per DATA chunk: the packet minus the common header and the DATA chunk header.</summary>
    private int MaxFragment => _settings.MaxPacketSize - SctpPacket.CommonHeaderLength - 4 - DataChunk.HeaderLength;

    public void HandlePacket(ReadOnlySpan<byte> data)
    {
        var packet = SctpPacket.TryParse(data);
        if (packet is null || packet.Chunks.Count == 0)
        {
            return; // RFC 4960 §6.8: a bad checksum means a silent discard.
        }
        var outgoing = new List<byte[]>();
        var delivered = new List<ReceivedMessage>();
        var becameEstablished = false;
        string? closeReason = null;
        lock (_gate)
        {
            if (State == SctpState.Terminated)
            {
                return;
            }
            var control = new List<SctpChunk>();
            var sawData = false;
            foreach (var chunk in packet.Chunks)
            {
                if (chunk.Type == ChunkType.Init)
                {
                    // RFC 4960 §8.5.1: INIT travels with tag 0 and alone.
                    if (packet.VerificationTag == 0 && InitChunk.Decode(chunk) is { } init)
                    {
                        outgoing.Add(new SctpPacket(packet.DestinationPort, packet.SourcePort, init.InitiateTag, [CreateInitAck(init)]).Encode());
                    }
                    break;
                }
                if (chunk.Type == ChunkType.CookieEcho)
                {
                    if (!HandleCookieEcho(packet, chunk, control, ref becameEstablished))
                    {
                        break;
                    }
                    continue;
                }
                // §8.5: everything else must carry our tag (ABORT / SHUTDOWN COMPLETE may reflect it with T set).
                var tBit = (chunk.Flags & 1) != 0;
                var tagOk = State != SctpState.Closed &&
                            (packet.VerificationTag == _localTag ||
                             (tBit && chunk.Type is ChunkType.Abort or ChunkType.ShutdownComplete && packet.VerificationTag == _peerTag));
                if (!tagOk)
                {
                    break;
                }
                switch (chunk.Type)
                {
                    case ChunkType.Data:
                        if (DataChunk.Decode(chunk) is { } dataChunk && _receive is not null)
                        {
                            sawData = true;
                            _receive.Receive(dataChunk, delivered);
                        }
                        break;
                    case ChunkType.Sack:
                        if (SackChunk.Decode(chunk) is { } sack)
                        {
                            HandleSack(sack);
                        }
                        break;
                    case ChunkType.Heartbeat:
                        // §8.3: echo the Heartbeat Info parameter unchanged.
                        control.Add(new SctpChunk(ChunkType.HeartbeatAck, 0, chunk.Value));
                        break;
                    case ChunkType.Abort:
                        closeReason = "peer sent ABORT";
                        break;
                    case ChunkType.Shutdown:
                        // §9.2: acknowledge outstanding data, then SHUTDOWN ACK once nothing is in flight.
                        if (chunk.Value.Length >= 4)
                        {
                            HandleSack(new SackChunk(BinaryPrimitives.ReadUInt32BigEndian(chunk.Value.Span), (uint)Math.Max(0, _peerWindow), [], []));
                        }
                        State = SctpState.ShutdownReceived;
                        break;
                    case ChunkType.ShutdownAck:
                        control.Add(new SctpChunk(ChunkType.ShutdownComplete, 0, ReadOnlyMemory<byte>.Empty));
                        closeReason = "shutdown complete";
                        break;
                    case ChunkType.ShutdownComplete:
                        closeReason = "shutdown complete";
                        break;
                    case ChunkType.HeartbeatAck or ChunkType.CookieAck or ChunkType.Error:
                        break;
                    default:
                        // §3.2: the two high bits of an unknown type say skip or stop, report or not.
                        var action = chunk.Type >> 6;
                        if (action is 1 or 3)
                        {
                            control.Add(UnrecognizedChunkError(chunk));
                        }
                        if (action is 0 or 1)
                        {
                            goto EndOfChunks;
                        }
                        break;
                }
                if (closeReason is not null)
                {
                    break;
                }
            }
        EndOfChunks:
            if (sawData && _receive is not null)
            {
                // Every packet that carried DATA is SACKed at once rather than delayed (§6.2 allows either,
                // and gaps, duplicates and RFC 7053's I bit ask for it anyway): a small packet per packet
                // keeps the sender's window moving.
                control.Insert(0, _receive.CreateSack().Encode());
            }
            if (State == SctpState.ShutdownReceived && _inFlight.Count == 0 && _pending.Count == 0 && closeReason is null)
            {
                control.Add(new SctpChunk(ChunkType.ShutdownAck, 0, ReadOnlyMemory<byte>.Empty));
            }
            if (State != SctpState.Closed)
            {
                Flush(control, outgoing);
            }
            if (closeReason is not null)
            {
                Terminate(closeReason);
            }
        }
        foreach (var bytes in outgoing)
        {
            _sendPacket(bytes);
        }
        if (becameEstablished)
        {
            Established?.Invoke();
        }
        foreach (var message in delivered)
        {
            MessageReceived?.Invoke(message);
        }
        if (closeReason is not null)
        {
            RaiseClosed();
        }
    }

    /// <summary>
    /// Queues one user message on a stream (fragmented to fit packets, §6.9) and sends what the
    /// windows allow. An empty message must already be mapped to a one-byte payload by the caller
    /// (RFC 8831 §6.6). False when the association is not open.
    /// </summary>
    public bool Send(ushort streamId, uint ppid, ReadOnlyMemory<byte> message, bool unordered)
    {
        var outgoing = new List<byte[]>();
        lock (_gate)
        {
            if (State is not SctpState.Established)
            {
                return false;
            }
            ushort sequence = 0;
            if (!unordered)
            {
                _nextSequence.TryGetValue(streamId, out sequence);
                _nextSequence[streamId] = (ushort)(sequence + 1);
            }
            var fragment = MaxFragment;
            var offset = 0;
            do
            {
                var length = Math.Min(fragment, message.Length - offset);
                var chunk = new DataChunk(_nextTsn++, streamId, sequence, ppid, message.Slice(offset, length),
                    Beginning: offset == 0, Ending: offset + length == message.Length, unordered);
                _pending.Enqueue(new Outbound(chunk, length));
                _pendingBytes += length;
                offset += length;
            }
            while (offset < message.Length);
            Flush([], outgoing);
        }
        foreach (var bytes in outgoing)
        {
            _sendPacket(bytes);
        }
        return true;
    }

    /// <summary>Completes when queued plus in-flight bytes fall to <paramref name="threshold"/> or the association ends.</summary>
    public async Task WaitForBufferBelowAsync(int threshold, CancellationToken cancellationToken)
    {
        while (true)
        {
            Task wait;
            lock (_gate)
            {
                if (State != SctpState.Established || _pendingBytes + _inFlight.Sum(c => c.Size) <= threshold)
                {
                    return;
                }
                wait = _drained.Task;
            }
            await wait.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Ends the association from our side with ABORT (§9.1): the session is going away.</summary>
    public void Abort(string reason)
    {
        byte[]? abort = null;
        lock (_gate)
        {
            if (State == SctpState.Terminated)
            {
                return;
            }
            if (State != SctpState.Closed)
            {
                abort = new SctpPacket(_localPort, _peerPort, _peerTag, [new SctpChunk(ChunkType.Abort, 0, ReadOnlyMemory<byte>.Empty)]).Encode();
            }
            Terminate(reason);
        }
        if (abort is not null)
        {
            _sendPacket(abort);
        }
        RaiseClosed();
    }

    public void Dispose()
    {
        Abort("disposed");
        _timer.Dispose();
    }

    private SctpChunk CreateInitAck(InitChunk init)
    {
        var localTag = State == SctpState.Closed ? NonZeroRandom() : _localTag;
        var localTsn = State == SctpState.Closed ? NonZeroRandom() : _nextTsn;
        var outbound = Math.Min(OurStreams, init.InboundStreams);
        var inbound = Math.Min(OurStreams, init.OutboundStreams);
        var cookie = _cookies.Create(new CookieState(init.InitiateTag, localTag, init.InitialTsn, localTsn, init.AdvertisedReceiverWindow, outbound, inbound));
        var parameters = new List<(ushort, ReadOnlyMemory<byte>)> { (InitChunk.StateCookieParameter, cookie) };
        foreach (var (type, value) in init.Parameters)
        {
            // §3.2.1: report parameters whose type has the 0x4000 bit set that we do not know
            // (Chromium's Forward-TSN-Supported, 0xC000: answering "unrecognized" keeps channels reliable).
            if ((type & 0x4000) != 0 && !IsKnownInitParameter(type))
            {
                var tlv = new byte[4 + value.Length];
                BinaryPrimitives.WriteUInt16BigEndian(tlv, type);
                BinaryPrimitives.WriteUInt16BigEndian(tlv.AsSpan(2), (ushort)tlv.Length);
                value.Span.CopyTo(tlv.AsSpan(4));
                parameters.Add((InitChunk.UnrecognizedParameter, tlv));
            }
            if ((type & 0x8000) == 0 && !IsKnownInitParameter(type))
            {
                break;
            }
        }
        return new InitChunk(localTag, (uint)_settings.ReceiveWindow, outbound, inbound, localTsn, parameters).Encode(ChunkType.InitAck);
    }

    /// <summary>IPv4/IPv6 address, cookie preservative, host name, supported address types, ECN capable (§3.3.2).</summary>
    private static bool IsKnownInitParameter(ushort type) => type is 5 or 6 or 9 or 11 or 12 or 0x8000;

    private bool HandleCookieEcho(SctpPacket packet, SctpChunk chunk, List<SctpChunk> control, ref bool becameEstablished)
    {
        var state = _cookies.Verify(chunk.Value.Span);
        // §5.1.5: a bad MAC, a stale cookie or a tag that is not the cookie's: discard.
        if (state is null || packet.VerificationTag != state.LocalTag)
        {
            return false;
        }
        if (State == SctpState.Closed)
        {
            _localPort = packet.DestinationPort;
            _peerPort = packet.SourcePort;
            _localTag = state.LocalTag;
            _peerTag = state.PeerTag;
            _nextTsn = state.LocalInitialTsn;
            _lastCumulativeAck = state.LocalInitialTsn - 1;
            _peerWindow = state.PeerReceiverWindow;
            _ssthresh = (int)Math.Min(int.MaxValue, state.PeerReceiverWindow);
            _receive = new ReceiveBuffer(state.PeerInitialTsn, _settings.ReceiveWindow);
            State = SctpState.Established;
            becameEstablished = true;
        }
        else if (state.LocalTag != _localTag || state.PeerTag != _peerTag)
        {
            return false; // a restart (§5.2.4) is not supported: the browser opens a new session instead
        }
        control.Add(new SctpChunk(ChunkType.CookieAck, 0, ReadOnlyMemory<byte>.Empty));
        return true;
    }

    private void HandleSack(SackChunk sack)
    {
        var cumulative = sack.CumulativeTsnAck;
        // §6.2.1 D: a SACK older than the last one carries nothing new.
        if (Serial.Lt(cumulative, _lastCumulativeAck))
        {
            return;
        }
        var cumulativeAdvanced = Serial.Gt(cumulative, _lastCumulativeAck);
        _lastCumulativeAck = cumulative;
        var now = _time.GetTimestamp();
        var bytesAcked = 0;
        var rttSampled = false;

        var removed = 0;
        foreach (var c in _inFlight)
        {
            if (!Serial.Le(c.Chunk.Tsn, cumulative))
            {
                break;
            }
            removed++;
            if (!c.GapAcked)
            {
                bytesAcked += c.Size;
            }
            if (c.Counted)
            {
                _flightBytes -= c.Size;
            }
            // §6.3.1 C5 (Karn): only chunks sent once give an RTT sample.
            if (!rttSampled && c.Transmissions == 1)
            {
                UpdateRto(_time.GetElapsedTime(c.SentAt, now));
                rttSampled = true;
            }
        }
        _inFlight.RemoveRange(0, removed);

        // Gap blocks: chunks the peer holds beyond the cumulative point (§3.3.4); unmark reneged ones.
        uint? highestGapAcked = null;
        foreach (var c in _inFlight)
        {
            var offset = c.Chunk.Tsn - cumulative;
            var acked = false;
            foreach (var block in sack.GapBlocks)
            {
                if (offset >= block.Start && offset <= block.End)
                {
                    acked = true;
                    break;
                }
            }
            if (acked)
            {
                highestGapAcked = c.Chunk.Tsn;
                if (!c.GapAcked)
                {
                    c.GapAcked = true;
                    c.Retransmit = false;
                    bytesAcked += c.Size;
                    if (c.Counted)
                    {
                        c.Counted = false;
                        _flightBytes -= c.Size;
                    }
                }
            }
            else if (c.GapAcked)
            {
                c.GapAcked = false;
                c.Retransmit = true;
            }
        }

        // §7.2.4: three SACKs reporting a hole trigger a fast retransmit and halve the window once per recovery.
        if (highestGapAcked is { } highest)
        {
            var enterRecovery = false;
            foreach (var c in _inFlight)
            {
                if (!Serial.Lt(c.Chunk.Tsn, highest))
                {
                    break;
                }
                if (!c.GapAcked && !c.Retransmit && ++c.MissIndications >= 3)
                {
                    c.MissIndications = 0;
                    MarkForRetransmit(c);
                    enterRecovery = true;
                }
            }
            if (enterRecovery && !_inFastRecovery)
            {
                _ssthresh = Math.Max(_cwnd / 2, 4 * _settings.MaxPacketSize);
                _cwnd = _ssthresh;
                _partialBytesAcked = 0;
                _inFastRecovery = true;
                _fastRecoveryExit = _nextTsn - 1;
            }
        }
        if (_inFastRecovery && Serial.Ge(cumulative, _fastRecoveryExit))
        {
            _inFastRecovery = false;
        }

        // §7.2.1 / §7.2.2: slow start below ssthresh, one MTU per window above it.
        if (cumulativeAdvanced && !_inFastRecovery && bytesAcked > 0)
        {
            if (_cwnd <= _ssthresh)
            {
                _cwnd += Math.Min(bytesAcked, _settings.MaxPacketSize);
            }
            else
            {
                _partialBytesAcked += bytesAcked;
                if (_partialBytesAcked >= _cwnd)
                {
                    _partialBytesAcked -= _cwnd;
                    _cwnd += _settings.MaxPacketSize;
                }
            }
        }

        // §6.2.1: the peer's window less what is still in flight.
        _peerWindow = Math.Max(0, (long)sack.AdvertisedReceiverWindow - _flightBytes);
        if (cumulativeAdvanced || bytesAcked > 0)
        {
            _errorCount = 0;
        }
        // §6.3.2 R2/R3: stop T3 when nothing is outstanding, restart it when the earliest chunk was acked.
        if (_inFlight.Count == 0)
        {
            _t3Deadline = null;
        }
        else if (cumulativeAdvanced)
        {
            _t3Deadline = now + (long)(_rto.TotalSeconds * _time.TimestampFrequency);
        }
        if (bytesAcked > 0)
        {
            var drained = _drained;
            _drained = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            drained.TrySetResult();
        }
    }

    private void UpdateRto(TimeSpan r)
    {
        // §6.3.1 C2/C3 with alpha 1/8, beta 1/4.
        if (!_rttMeasured)
        {
            _srtt = r;
            _rttvar = r / 2;
            _rttMeasured = true;
        }
        else
        {
            _rttvar = (_rttvar * 3 / 4) + (Abs(_srtt - r) / 4);
            _srtt = (_srtt * 7 / 8) + (r / 8);
        }
        _rto = Clamp(_srtt + (4 * _rttvar));
    }

    private void OnTimer()
    {
        var outgoing = new List<byte[]>();
        string? closeReason = null;
        lock (_gate)
        {
            if (State is SctpState.Terminated or SctpState.Closed || _t3Deadline is not { } deadline || _time.GetTimestamp() < deadline)
            {
                return;
            }
            // §6.3.3: T3-rtx expired: back off, collapse the window, resend from the earliest outstanding chunk.
            if (++_errorCount > _settings.MaxRetransmissions)
            {
                closeReason = "retransmission limit reached";
                outgoing.Add(new SctpPacket(_localPort, _peerPort, _peerTag, [new SctpChunk(ChunkType.Abort, 0, ReadOnlyMemory<byte>.Empty)]).Encode());
                Terminate(closeReason);
            }
            else
            {
                _ssthresh = Math.Max(_cwnd / 2, 4 * _settings.MaxPacketSize);
                _cwnd = _settings.MaxPacketSize;
                _partialBytesAcked = 0;
                _inFastRecovery = false;
                _rto = Clamp(_rto * 2);
                foreach (var c in _inFlight)
                {
                    if (!c.GapAcked)
                    {
                        MarkForRetransmit(c);
                    }
                }
                _t3Deadline = null;
                Flush([], outgoing);
            }
        }
        foreach (var bytes in outgoing)
        {
            _sendPacket(bytes);
        }
        if (closeReason is not null)
        {
            RaiseClosed();
        }
    }

    private void MarkForRetransmit(Outbound c)
    {
        c.Retransmit = true;
        if (c.Counted)
        {
            c.Counted = false;
            _flightBytes -= c.Size;
        }
    }

    /// <summary>
    /// Bundles control chunks, retransmissions, then new DATA into packets (§6.10), within the
    /// congestion window and the peer's receiver window (§6.1 rules A and B: one chunk may always go
    /// when nothing is in flight, so a zero window is probed).
    /// </summary>
    private void Flush(List<SctpChunk> control, List<byte[]> outgoing)
    {
        var chunks = new List<SctpChunk>();
        var size = SctpPacket.CommonHeaderLength;
        var now = _time.GetTimestamp();
        var sentData = false;

        void Add(SctpChunk chunk)
        {
            if (size + chunk.EncodedLength > _settings.MaxPacketSize && chunks.Count > 0)
            {
                outgoing.Add(new SctpPacket(_localPort, _peerPort, _peerTag, [.. chunks]).Encode());
                chunks.Clear();
                size = SctpPacket.CommonHeaderLength;
            }
            chunks.Add(chunk);
            size += chunk.EncodedLength;
        }

        foreach (var c in control)
        {
            Add(c);
        }
        if (State is SctpState.Established or SctpState.ShutdownReceived)
        {
            var retransmitted = 0;
            foreach (var c in _inFlight)
            {
                if (!c.Retransmit)
                {
                    continue;
                }
                if (retransmitted > 0 && _flightBytes + c.Size > _cwnd)
                {
                    break;
                }
                c.Retransmit = false;
                c.Counted = true;
                c.Transmissions++;
                c.SentAt = now;
                _flightBytes += c.Size;
                retransmitted++;
                Add(c.Encoded);
                sentData = true;
            }
            while (_pending.Count > 0)
            {
                var c = _pending.Peek();
                if (_flightBytes > 0 && (_flightBytes + c.Size > _cwnd || c.Size > _peerWindow))
                {
                    break;
                }
                _pending.Dequeue();
                _pendingBytes -= c.Size;
                c.Counted = true;
                c.Transmissions = 1;
                c.SentAt = now;
                _flightBytes += c.Size;
                _peerWindow = Math.Max(0, _peerWindow - c.Size);
                _inFlight.Add(c);
                Add(c.Encoded);
                sentData = true;
            }
        }
        if (chunks.Count > 0)
        {
            outgoing.Add(new SctpPacket(_localPort, _peerPort, _peerTag, [.. chunks]).Encode());
        }
        if (sentData && _t3Deadline is null)
        {
            _t3Deadline = now + (long)(_rto.TotalSeconds * _time.TimestampFrequency);
        }
    }

    private void Terminate(string reason)
    {
        State = SctpState.Terminated;
        _closeReason ??= reason;
        _t3Deadline = null;
        _pending.Clear();
        _inFlight.Clear();
        _drained.TrySetResult();
    }

    private int _closedRaised;

    private void RaiseClosed()
    {
        if (Interlocked.Exchange(ref _closedRaised, 1) == 0)
        {
            _timer.Dispose();
            Closed?.Invoke(_closeReason ?? "closed");
        }
    }

    private SctpChunk UnrecognizedChunkError(SctpChunk chunk)
    {
        // §3.3.10.6: cause 6 carries the unrecognized chunk.
        var cause = new byte[4 + 4 + chunk.Value.Length];
        BinaryPrimitives.WriteUInt16BigEndian(cause, 6);
        BinaryPrimitives.WriteUInt16BigEndian(cause.AsSpan(2), (ushort)cause.Length);
        cause[4] = chunk.Type;
        cause[5] = chunk.Flags;
        BinaryPrimitives.WriteUInt16BigEndian(cause.AsSpan(6), (ushort)(4 + chunk.Value.Length));
        chunk.Value.Span.CopyTo(cause.AsSpan(8));
        return new SctpChunk(ChunkType.Error, 0, cause);
    }

    private TimeSpan Clamp(TimeSpan rto) =>
        rto < _settings.MinRto ? _settings.MinRto : rto > _settings.MaxRto ? _settings.MaxRto : rto;

    private static TimeSpan Abs(TimeSpan t) => t < TimeSpan.Zero ? -t : t;

    private static uint NonZeroRandom()
    {
        uint value;
        do
        {
            value = BinaryPrimitives.ReadUInt32BigEndian(RandomNumberGenerator.GetBytes(4));
        }
        while (value == 0);
        return value;
    }

    private sealed class Outbound(DataChunk chunk, int size)
    {
        public DataChunk Chunk { get; } = chunk;
        public SctpChunk Encoded { get; } = chunk.Encode();
        public int Size { get; } = size;
        public long SentAt { get; set; }
        public int Transmissions { get; set; }
        public bool Counted { get; set; }
        public bool GapAcked { get; set; }
        public bool Retransmit { get; set; }
        public int MissIndications { get; set; }
    }
}
