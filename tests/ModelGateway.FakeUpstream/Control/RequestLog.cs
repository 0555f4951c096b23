namespace ModelGateway.FakeUpstream.Control;

/// <summary>One request as received, for <c>GET /_fake/requests</c>.</summary>
/// <param name="Body">The raw body bytes.</param>
/// <param name="BodyIsJson">Whether <paramref name="Body"/> parsed as JSON (then it is echoed as JSON, else as a string).</param>
/// <param name="ReceivedAt">When the body had been read.</param>
/// <param name="HttpVersion">The HTTP version it came over (<c>HTTP/1.1</c>, <c>HTTP/2</c>).</param>
internal sealed record RecordedRequest(
    string Protocol,
    string HttpVersion,
    string Path,
    KeyValuePair<string, string>[] Headers,
    byte[] Body,
    bool BodyIsJson,
    DateTimeOffset ReceivedAt)
{
    private long _completedAtTicks;
    private int _aborted;

    /// <summary>
    /// When the fake stopped handling the request (null while it is still in progress). Lets tests measure how soon a
    /// client's cancellation reached the upstream: a gateway that does not pass it on keeps the fake streaming.
    /// </summary>
    public DateTimeOffset? CompletedAt
    {
        get
        {
            var ticks = Volatile.Read(ref _completedAtTicks);
            return ticks == 0 ? null : new DateTimeOffset(ticks, TimeSpan.Zero);
        }
    }

    /// <summary>True when the connection was aborted before the answer was complete: the client went away, or a fault cut it.</summary>
    public bool Aborted => Volatile.Read(ref _aborted) != 0;

    public void Complete(DateTimeOffset at, bool aborted)
    {
        Volatile.Write(ref _aborted, aborted ? 1 : 0);
        Volatile.Write(ref _completedAtTicks, at.UtcTicks);
    }
}

/// <summary>
/// The last <see cref="Capacity"/> requests, newest last (docs/fake-upstream.md). A fixed ring under a
/// lock held only for an array store: cheap enough for hundreds of concurrent requests, and bounded
/// so a load test cannot grow it.
/// </summary>
internal sealed class RequestLog
{
    public const int Capacity = 200;

    private readonly RecordedRequest?[] _ring = new RecordedRequest?[Capacity];
    private readonly Lock _lock = new();
    private int _next;
    private int _count;

    public void Add(RecordedRequest request)
    {
        lock (_lock)
        {
            _ring[_next] = request;
            _next = (_next + 1) % Capacity;
            _count = Math.Min(_count + 1, Capacity);
        }
    }

    /// <summary>Oldest first.</summary>
    public RecordedRequest[] Snapshot()
    {
        lock (_lock)
        {
            var result = new RecordedRequest[_count];
            var start = (_next - _count + Capacity) % Capacity;
            for (var i = 0; i < _count; i++)
            {
                result[i] = _ring[(start + i) % Capacity]!;
            }
            return result;
        }
    }

    public void Clear()
    {
        lock (_lock)
        {
            Array.Clear(_ring);
            _next = 0;
            _count = 0;
        }
    }
}
