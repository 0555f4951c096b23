namespace ModelGateway.FakeUpstream.Chat;

/// <summary>
/// One message reduced to what the deterministic rules of docs/fake-upstream.md look at:
/// its role, its text (text parts joined with a space) and, for a tool result, the result text.
/// </summary>
internal readonly record struct PromptMessage(string Role, string Text, string? ToolResultText)
{
    public bool IsToolResult => ToolResultText is not null;
}

/// <summary>The tool the fake will call, with arguments already derived from its JSON schema.</summary>
internal sealed record ToolInvocation(string Name, string ArgumentsJson);

/// <summary>
/// The client asked for JSON (OpenAI/llama.cpp <c>response_format</c>, llama.cpp's top-level <c>json_schema</c>);
/// <see cref="Schema"/> is null for plain <c>json_object</c>.
/// </summary>
internal sealed record JsonOutput(System.Text.Json.JsonElement? Schema);

/// <summary>
/// A chat request in protocol-neutral form. Each protocol's reader fills it from its own wire
/// format so that the answer and usage rules are written once (Chat/ReplyBuilder.cs).
/// </summary>
internal sealed record ChatPrompt
{
    /// <summary>The requested model, null when the protocol allows leaving it out (llama.cpp).</summary>
    public string? Model { get; init; }

    public required IReadOnlyList<PromptMessage> Messages { get; init; }

    /// <summary>Null when no tools were offered or tool_choice forbids calling one.</summary>
    public ToolInvocation? Tool { get; init; }

    /// <summary>Set when the answer must be JSON (the constraint of the protocol's own <c>response_format</c>).</summary>
    public JsonOutput? Json { get; init; }

    public int? MaxTokens { get; init; }

    public IReadOnlyList<string> Stop { get; init; } = [];

    public bool Stream { get; init; }

    /// <summary>OpenAI/llama.cpp <c>stream_options.include_usage</c>; Anthropic always reports usage.</summary>
    public bool IncludeUsage { get; init; }

    /// <summary>llama.cpp <c>timings_per_token</c>: timings on every chunk, not only the last.</summary>
    public bool TimingsPerToken { get; init; }
}
