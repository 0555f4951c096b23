using System.Text.Json.Nodes;

namespace ModelGateway.Api.Providers;

/// <summary>What an adapter returns for one attempt. Disposing releases the upstream response.</summary>
internal abstract class ProviderResponse : IDisposable
{
    public virtual void Dispose()
    {
    }
}

/// <summary>
/// The upstream refused or failed before any byte reached the client. <see cref="Retryable"/> tells the
/// router whether another target may be tried (connection failure, timeout, 429, 5xx).
/// </summary>
internal sealed class ProviderFailure(int statusCode, string type, string? code, string message, bool retryable) : ProviderResponse
{
    /// <summary>The HTTP status the client gets if no other target succeeds (502 for connection failures, 504 for timeouts).</summary>
    public int StatusCode { get; } = statusCode;

    /// <summary>OpenAI error <c>type</c>, e.g. <c>rate_limit_error</c>, <c>invalid_request_error</c>, <c>api_error</c>.</summary>
    public string Type { get; } = type;

    public string? Code { get; } = code;

    public string Message { get; } = message;

    public bool Retryable { get; } = retryable;

    /// <summary>The upstream's <c>retry-after</c>, if it sent one.</summary>
    public TimeSpan? RetryAfter { get; init; }

    /// <summary>A short machine-readable reason for traces and metrics (<c>error.type</c>), e.g. <c>429</c>, <c>timeout</c>.</summary>
    public string ErrorType { get; init; } = "";

    public static ProviderFailure ConnectionFailed(string message) =>
        new(502, "api_error", "upstream_unavailable", message, retryable: true) { ErrorType = "connection_error" };

    public static ProviderFailure Timeout(string message) =>
        new(504, "api_error", "upstream_timeout", message, retryable: true) { ErrorType = "timeout" };

    /// <summary>Maps an upstream HTTP status to the client-facing status, type and retryability.</summary>
    public static ProviderFailure FromStatus(int upstreamStatus, string message, string? upstreamType, TimeSpan? retryAfter)
    {
        var retryable = upstreamStatus is 408 or 409 or 429 || upstreamStatus >= 500;
        var (status, type) = upstreamStatus switch
        {
            400 or 404 or 413 or 422 => (400, "invalid_request_error"),
            // The provider rejected the gateway's credentials: a gateway misconfiguration, not the client's fault.
            401 or 403 => (502, "api_error"),
            429 => (429, "rate_limit_error"),
            >= 500 => (502, "api_error"),
            _ => (502, "api_error"),
        };
        return new ProviderFailure(status, upstreamType ?? type, upstreamStatus == 429 ? "upstream_rate_limited" : "upstream_error",
            message, retryable)
        {
            RetryAfter = retryAfter,
            ErrorType = upstreamStatus.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
    }
}

/// <summary>A non-streaming answer, already translated to an OpenAI <c>chat.completion</c> object.</summary>
internal sealed class ProviderCompletion(JsonObject completion, TokenUsage usage) : ProviderResponse
{
    public JsonObject Completion { get; } = completion;

    public TokenUsage Usage { get; } = usage;

    public string? FinishReason => Completion["choices"]?[0]?["finish_reason"]?.GetValue<string>();
}

/// <summary>
/// A streaming answer whose headers have arrived. Events are read lazily so the relay writes each
/// chunk to the client as it arrives. If the upstream connection breaks, <see cref="ReadEventsAsync"/>
/// throws (an <see cref="IOException"/> or <see cref="HttpRequestException"/>).
/// </summary>
internal abstract class ProviderStream : ProviderResponse
{
    public abstract IAsyncEnumerable<StreamEvent> ReadEventsAsync(CancellationToken cancellationToken);
}

internal enum StreamEventKind
{
    /// <summary>An OpenAI <c>chat.completion.chunk</c> with choices: relayed to the client.</summary>
    Chunk,

    /// <summary>The usage-only chunk (<c>choices: []</c>): relayed only if the client asked for <c>include_usage</c>.</summary>
    Usage,

    /// <summary>A mid-stream upstream error, as an OpenAI error envelope: relayed, then the stream ends without [DONE].</summary>
    Error,
}

/// <summary>
/// One translated stream event. <see cref="Json"/> is the OpenAI JSON payload (without the SSE <c>data: </c> framing).
/// <see cref="Usage"/> is set when this event carried usage; <see cref="ContentDelta"/> holds the text this chunk
/// added (content and tool-call arguments), so a stream cut short can still be billed for what was produced.
/// </summary>
internal readonly record struct StreamEvent(StreamEventKind Kind, ReadOnlyMemory<byte> Json, TokenUsage? Usage = null,
    string? FinishReason = null, string? ContentDelta = null);

/// <summary>
/// Token usage, normalised. <see cref="Estimated"/> is true when the provider reported none and the gateway
/// counted with its tokenizer. <see cref="Raw"/> keeps the provider's own usage object as it was sent.
/// </summary>
internal readonly record struct TokenUsage(int InputTokens, int OutputTokens, int CachedInputTokens = 0, bool Estimated = false)
{
    public int TotalTokens => InputTokens + OutputTokens;

    public JsonNode? Raw { get; init; }

    /// <summary>The usage of two calls made for one request (a structured-output repair); estimated if either was.</summary>
    public TokenUsage Plus(TokenUsage other) => new(InputTokens + other.InputTokens, OutputTokens + other.OutputTokens,
        CachedInputTokens + other.CachedInputTokens, Estimated || other.Estimated);

    public JsonObject ToOpenAIUsage()
    {
        var usage = new JsonObject
        {
            ["prompt_tokens"] = InputTokens,
            ["completion_tokens"] = OutputTokens,
            ["total_tokens"] = TotalTokens,
        };
        if (CachedInputTokens > 0)
        {
            usage["prompt_tokens_details"] = new JsonObject { ["cached_tokens"] = CachedInputTokens };
        }
        return usage;
    }
}
