using System.Text.Json;
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

/// <summary>
/// A non-streaming answer as an OpenAI <c>chat.completion</c>. It holds either bytes, the upstream's own when they are already
/// an OpenAI completion that needs no change (scanned once by <see cref="CompletionScan"/> for usage, id, model and finish
/// reason) or a translation written straight to bytes (Anthropic), or a translated object (llama.cpp). The bytes are written
/// to the client as they are; <see cref="Completion"/> parses them only for the callers that must look inside (structured
/// output, content capture), and from then on the object is what gets written, so a caller that changes it changes the answer.
/// </summary>
internal sealed class ProviderCompletion : ProviderResponse
{
    private readonly ReadOnlyMemory<byte> _utf8;
    private JsonObject? _completion;

    public ProviderCompletion(JsonObject completion, TokenUsage usage)
    {
        _completion = completion;
        Usage = usage;
        Id = StringOf(completion["id"]);
        Model = StringOf(completion["model"]);
        FinishReason = completion["choices"] is JsonArray { Count: > 0 } choices && choices[0] is JsonObject first
            ? StringOf(first["finish_reason"])
            : null;
    }

    /// <summary>An upstream body that is already the OpenAI answer, as <paramref name="scan"/> found it.</summary>
    public ProviderCompletion(ReadOnlyMemory<byte> utf8, in CompletionScan scan)
        : this(utf8, scan.Usage, scan.Id, scan.Model, scan.FinishReason)
    {
    }

    /// <summary>An OpenAI answer as bytes (the upstream's own, or a translation written straight to bytes) and what it says.</summary>
    public ProviderCompletion(ReadOnlyMemory<byte> utf8, TokenUsage usage, string? id, string? model, string? finishReason)
    {
        _utf8 = utf8;
        (Usage, Id, Model, FinishReason) = (usage, id, model, finishReason);
    }

    /// <summary>The answer as an object, parsed on first use when it came as bytes.</summary>
    public JsonObject Completion => _completion ??= (JsonObject)JsonNode.Parse(_utf8.Span)!;

    public TokenUsage Usage { get; }

    /// <summary>The top-level <c>id</c> when it is a string.</summary>
    public string? Id { get; }

    /// <summary>The top-level <c>model</c> when it is a string.</summary>
    public string? Model { get; }

    /// <summary>The first choice's <c>finish_reason</c> when it is a string.</summary>
    public string? FinishReason { get; }

    /// <summary>Writes the answer: the upstream bytes as they came unless the object was asked for.</summary>
    public ValueTask<System.IO.Pipelines.FlushResult> WriteToAsync(System.IO.Pipelines.PipeWriter writer, CancellationToken cancellationToken)
    {
        if (_completion is null)
        {
            return writer.WriteAsync(_utf8, cancellationToken);
        }
        using (var json = new Utf8JsonWriter(writer))
        {
            _completion.WriteTo(json);
        }
        return writer.FlushAsync(cancellationToken);
    }

    private static string? StringOf(JsonNode? node) =>
        node is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : null;
}

/// <summary>
/// A streaming answer whose headers have arrived. Events are read lazily so the relay writes each
/// chunk to the client as it arrives. If the upstream connection breaks, <see cref="ReadEventsAsync"/>
/// throws (an <see cref="IOException"/> or <see cref="HttpRequestException"/>).
/// </summary>
internal abstract class ProviderStream : ProviderResponse
{
    public abstract IAsyncEnumerable<StreamEvent> ReadEventsAsync(CancellationToken cancellationToken);

    /// <summary>Completes once <see cref="ProviderResponse.Dispose"/> has let go of the upstream response (see <see cref="UpstreamBody.Release"/>).</summary>
    public Task Released { get; protected set; } = Task.CompletedTask;
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
/// One translated stream event. <see cref="Json"/> is the OpenAI JSON payload (without the SSE <c>data: </c> framing); it
/// is valid until the next event of the same stream is read (adapters reuse one buffer per stream), so whoever keeps an
/// event past that copies its bytes.
/// <see cref="Usage"/> is set when this event carried usage; <see cref="ContentDelta"/> holds the text this chunk
/// added (content and tool-call arguments), so a stream cut short can still be billed for what was produced.
/// </summary>
internal readonly record struct StreamEvent(StreamEventKind Kind, ReadOnlyMemory<byte> Json, TokenUsage? Usage = null,
    string? FinishReason = null, string? ContentDelta = null);

/// <summary>
/// Token usage, normalised. <see cref="Estimated"/> is true when the provider reported none and the gateway
/// counted with its tokenizer.
/// </summary>
internal readonly record struct TokenUsage(int InputTokens, int OutputTokens, int CachedInputTokens = 0, bool Estimated = false)
{
    public int TotalTokens => InputTokens + OutputTokens;

    /// <summary>The usage of two calls made for one request (a structured-output repair); estimated if either was.</summary>
    public TokenUsage Plus(TokenUsage other) => new(InputTokens + other.InputTokens, OutputTokens + other.OutputTokens,
        CachedInputTokens + other.CachedInputTokens, Estimated || other.Estimated);

    /// <summary>Writes the OpenAI <c>usage</c> object (the value; the caller has written its name), as <see cref="ToOpenAIUsage"/> builds it.</summary>
    public void WriteOpenAIUsage(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteNumber("prompt_tokens"u8, InputTokens);
        writer.WriteNumber("completion_tokens"u8, OutputTokens);
        writer.WriteNumber("total_tokens"u8, TotalTokens);
        if (CachedInputTokens > 0)
        {
            writer.WriteStartObject("prompt_tokens_details"u8);
            writer.WriteNumber("cached_tokens"u8, CachedInputTokens);
            writer.WriteEndObject();
        }
        writer.WriteEndObject();
    }

    /// <summary>The OpenAI <c>usage</c> object, for answers handled as documents (<see cref="WriteOpenAIUsage"/> writes the same).</summary>
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
