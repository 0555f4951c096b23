namespace ModelGateway.Realtime.Chat;

/// <summary>What the Api said about a tenant key.</summary>
internal enum KeyCheck
{
    Valid,
    Invalid,
    /// <summary>The Api could not be asked (down, timing out, answering 5xx): the key is neither accepted nor refused.</summary>
    Unavailable,
}

/// <summary>One event of a chat call to the Api.</summary>
internal abstract record ApiChatEvent
{
    /// <summary>One <c>chat.completion.chunk</c> JSON object, verbatim from the SSE stream.</summary>
    public sealed record Chunk(string Json) : ApiChatEvent;

    /// <summary>A whole <c>chat.completion</c> (the Api answered without streaming).</summary>
    public sealed record Completion(string Json) : ApiChatEvent;

    /// <summary>An error: HTTP status and the OpenAI error envelope <c>{"error":{...}}</c>.</summary>
    public sealed record Error(int Status, string Json) : ApiChatEvent;
}

/// <summary>
/// The Realtime service's only view of the Api: chat requests arriving on data channels are sent on
/// like any HTTP client's, with the tenant's own key, so that tenants, budgets, policy and traces apply.
/// </summary>
internal interface IApiClient
{
    /// <summary><c>GET /v1/models</c> with the key: 200 = valid, 401/403 = invalid.</summary>
    Task<KeyCheck> ValidateKeyAsync(string apiKey, CancellationToken cancellationToken);

    /// <summary><c>POST /v1/chat/completions</c> (the body already asks for a stream) and the events of its answer.</summary>
    IAsyncEnumerable<ApiChatEvent> StreamChatAsync(string apiKey, ReadOnlyMemory<byte> requestBody, CancellationToken cancellationToken);
}
