namespace ModelGateway.Realtime.Sctp;

/// <summary>A whole user message, reassembled and (for ordered streams) in stream order.</summary>
internal sealed record ReceivedMessage(ushort StreamId, uint Ppid, byte[] Data);

/// <summary>
/// The receive side of an association: TSN bookkeeping for SACKs (RFC 4960 §6.2, gap blocks §3.3.4,
/// duplicates §6.2), reassembly of fragmented messages (§6.9) and ordered delivery per stream by SSN (§6.5).
/// Not thread-safe: the association calls it under its lock.
/// </summary>
internal sealed class ReceiveBuffer(uint peerInitialTsn, int capacityBytes)
{
    private const int MaxDuplicatesReported = 16;
    private const int MaxGapBlocks = 64;

    private readonly Dictionary<uint, DataChunk> _fragments = [];
    private readonly HashSet<uint> _ahead = [];
    private readonly List<uint> _duplicates = [];
    private readonly Dictionary<ushort, StreamState> _streams = [];
    private uint _cumulative = peerInitialTsn - 1;
    private uint _highest = peerInitialTsn - 1;
    private int _buffered;

    public uint CumulativeTsn => _cumulative;

    /// <summary>Bytes we can still take: the a_rwnd we advertise (§6.2.1).</summary>
    public uint ReceiverWindow => (uint)Math.Max(0, capacityBytes - _buffered);

    public bool HasGaps => _ahead.Count > 0;

    /// <summary>Takes one DATA chunk; complete messages are appended to <paramref name="delivered"/>. False for a duplicate or a drop.</summary>
    public bool Receive(DataChunk chunk, List<ReceivedMessage> delivered)
    {
        var tsn = chunk.Tsn;
        if (Serial.Le(tsn, _cumulative) || _ahead.Contains(tsn))
        {
            if (_duplicates.Count < MaxDuplicatesReported)
            {
                _duplicates.Add(tsn);
            }
            return false;
        }
        // §6.2: with no window left, drop new data beyond what we have, but always take data that fills a hole.
        if (_buffered + chunk.UserData.Length > capacityBytes && Serial.Gt(tsn, _highest))
        {
            return false;
        }
        if (Serial.Gt(tsn, _highest))
        {
            _highest = tsn;
        }
        if (tsn == _cumulative + 1)
        {
            _cumulative = tsn;
            while (_ahead.Remove(_cumulative + 1))
            {
                _cumulative++;
            }
        }
        else
        {
            _ahead.Add(tsn);
        }
        _fragments[tsn] = chunk;
        _buffered += chunk.UserData.Length;
        TryAssemble(tsn, delivered);
        return true;
    }

    /// <summary>The SACK for what we hold now; duplicates are reported once.</summary>
    public SackChunk CreateSack()
    {
        var blocks = new List<GapBlock>();
        if (_ahead.Count > 0)
        {
            var sorted = new List<uint>(_ahead);
            sorted.Sort((a, b) => (int)(a - b));
            var start = sorted[0];
            var end = start;
            for (var i = 1; i <= sorted.Count && blocks.Count < MaxGapBlocks; i++)
            {
                if (i < sorted.Count && sorted[i] == end + 1)
                {
                    end = sorted[i];
                    continue;
                }
                blocks.Add(new GapBlock((ushort)(start - _cumulative), (ushort)(end - _cumulative)));
                if (i < sorted.Count)
                {
                    start = end = sorted[i];
                }
            }
        }
        var sack = new SackChunk(_cumulative, ReceiverWindow, blocks, [.. _duplicates]);
        _duplicates.Clear();
        return sack;
    }

    private void TryAssemble(uint tsn, List<ReceivedMessage> delivered)
    {
        // §6.9: the fragments of one message carry consecutive TSNs from B to E.
        var first = tsn;
        while (!_fragments[first].Beginning)
        {
            if (!_fragments.ContainsKey(first - 1))
            {
                return;
            }
            first--;
        }
        var last = first;
        var length = 0;
        while (true)
        {
            var f = _fragments[last];
            length += f.UserData.Length;
            if (f.Ending)
            {
                break;
            }
            if (!_fragments.ContainsKey(last + 1))
            {
                return;
            }
            last++;
        }
        var head = _fragments[first];
        var data = new byte[length];
        var offset = 0;
        for (var t = first; ; t++)
        {
            var f = _fragments[t];
            f.UserData.Span.CopyTo(data.AsSpan(offset));
            offset += f.UserData.Length;
            _fragments.Remove(t);
            if (t == last)
            {
                break;
            }
        }
        var message = new ReceivedMessage(head.StreamId, head.Ppid, data);
        if (head.Unordered)
        {
            _buffered -= length;
            delivered.Add(message);
            return;
        }
        if (!_streams.TryGetValue(head.StreamId, out var stream))
        {
            _streams[head.StreamId] = stream = new StreamState();
        }
        stream.Pending[head.StreamSequence] = message;
        while (stream.Pending.Remove(stream.NextSequence, out var next))
        {
            _buffered -= next.Data.Length;
            delivered.Add(next);
            stream.NextSequence++;
        }
    }

    private sealed class StreamState
    {
        public ushort NextSequence;
        public readonly Dictionary<ushort, ReceivedMessage> Pending = [];
    }
}
