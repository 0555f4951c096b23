using ModelGateway.FakeUpstream.Control;

namespace ModelGateway.FakeUpstream.Chat;

/// <summary>
/// The usage one response has reported so far. Protocols call <see cref="Report"/> as they write a
/// usage field, and the difference goes to _fake/stats at once: a cut stream counts exactly what went
/// out before the cut (docs/fake-upstream.md, "_fake/stats"), and the stats are current as soon as
/// the client has read the usage, without waiting for the request to finish.
/// </summary>
internal sealed class UsageTally(UsageStats stats, UpstreamProtocol protocol)
{
    private int _input;
    private int _output;

    /// <summary>Usage fields are cumulative in every protocol (Anthropic message_delta included), so the last report wins.</summary>
    public void Report(int inputTokens, int outputTokens)
    {
        stats.AddUsage(protocol, inputTokens - _input, outputTokens - _output);
        _input = inputTokens;
        _output = outputTokens;
    }
}
