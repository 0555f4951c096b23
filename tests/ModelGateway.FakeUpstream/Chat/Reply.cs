namespace ModelGateway.FakeUpstream.Chat;

/// <summary>Why the reply ended; each protocol maps it to its own finish/stop reason.</summary>
internal enum FinishReason
{
    /// <summary>OpenAI/llama.cpp <c>stop</c>, Anthropic <c>end_turn</c>.</summary>
    Complete,

    /// <summary>The max_tokens cap: OpenAI <c>length</c>, Anthropic <c>max_tokens</c>.</summary>
    Length,

    /// <summary>A stop string matched: OpenAI <c>stop</c>, Anthropic <c>stop_sequence</c>.</summary>
    StopSequence,

    /// <summary>OpenAI <c>tool_calls</c>, Anthropic <c>tool_use</c>.</summary>
    ToolCall,
}

/// <summary>A tool call answer; <see cref="Fragments"/> are the pieces a stream sends the arguments in.</summary>
internal sealed record ToolCallReply(string Name, string ArgumentsJson, IReadOnlyList<string> Fragments);

/// <summary>
/// The deterministic answer to a prompt, before any protocol formats it. The text is kept as its
/// word chunks (what a stream sends one by one); a non-streamed answer writes them as segments of
/// one JSON string, so even the multi-MiB fault-huge reply is never built as one string.
/// </summary>
internal sealed class Reply
{
    public required IReadOnlyList<string> Chunks { get; init; }

    public ToolCallReply? ToolCall { get; init; }

    public required FinishReason Finish { get; init; }

    /// <summary>The stop string that ended the reply (Anthropic reports it as <c>stop_sequence</c>).</summary>
    public string? MatchedStop { get; init; }

    public required int InputTokens { get; init; }

    public required int OutputTokens { get; init; }
}
