namespace ModelGateway.FakeUpstream.Chat;

/// <summary>The three wires the fake speaks; the name is what _fake/requests and _fake/stats report.</summary>
internal enum UpstreamProtocol
{
    OpenAI,
    Anthropic,
    LlamaCpp,
}

internal static class UpstreamProtocolNames
{
    public const int Count = 3;

    public static string Name(this UpstreamProtocol protocol) => protocol switch
    {
        UpstreamProtocol.OpenAI => "openai",
        UpstreamProtocol.Anthropic => "anthropic",
        _ => "llamacpp",
    };
}
