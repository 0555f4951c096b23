using ModelGateway.FakeUpstream.Chat;

namespace ModelGateway.FakeUpstream.Control;

/// <summary>
/// Totals for <c>GET /_fake/stats</c>: requests received, and the usage the fake <em>reported</em> on
/// the wire (an OpenAI stream without include_usage reports none; a cut stream only what preceded the
/// cut). Interlocked counters, one set per protocol; the overall figures are their sums.
/// </summary>
internal sealed class UsageStats
{
    private readonly long[] _requests = new long[UpstreamProtocolNames.Count];
    private readonly long[] _input = new long[UpstreamProtocolNames.Count];
    private readonly long[] _output = new long[UpstreamProtocolNames.Count];

    public void CountRequest(UpstreamProtocol protocol) => Interlocked.Increment(ref _requests[(int)protocol]);

    public void AddUsage(UpstreamProtocol protocol, int inputTokens, int outputTokens)
    {
        if (inputTokens != 0)
        {
            Interlocked.Add(ref _input[(int)protocol], inputTokens);
        }
        if (outputTokens != 0)
        {
            Interlocked.Add(ref _output[(int)protocol], outputTokens);
        }
    }

    public (long Requests, long InputTokens, long OutputTokens) Read(UpstreamProtocol protocol) =>
        (Interlocked.Read(ref _requests[(int)protocol]),
         Interlocked.Read(ref _input[(int)protocol]),
         Interlocked.Read(ref _output[(int)protocol]));

    public void Reset()
    {
        for (var i = 0; i < UpstreamProtocolNames.Count; i++)
        {
            Interlocked.Exchange(ref _requests[i], 0);
            Interlocked.Exchange(ref _input[i], 0);
            Interlocked.Exchange(ref _output[i], 0);
        }
    }
}
