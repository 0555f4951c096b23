using System.Text.Json;
using ModelGateway.FakeUpstream.Chat;
using ModelGateway.FakeUpstream.OpenAI;

namespace ModelGateway.FakeUpstream.LlamaCpp;

/// <summary>
/// llama.cpp server's OpenAI-compatible chat endpoint with its quirks (shared/wire/README.md,
/// "llama.cpp"): keys in llama.cpp's insertion order (its server writes nlohmann::ordered_json),
/// <c>system_fingerprint</c> "b&lt;build&gt;-&lt;hash&gt;", a first delta of <c>{"role":"assistant","content":null}</c>,
/// <c>timings</c> next to usage and on the last chunk, usage in a stream only when include_usage is
/// asked, and errors as <c>{"error":{"code":&lt;int&gt;,"message","type"}}</c> (llamacpp_error_*.json).
/// </summary>
internal sealed class LlamaCppProtocol : IChatProtocol
{
    /// <summary>What llama.cpp reports when the request names no model (its DEFAULT_OAICOMPAT_MODEL).</summary>
    public const string DefaultModel = "gpt-3.5-turbo";

    public const string ToolCallId = "call_fake_1";

    private const string SystemFingerprint = "b6500-fake0000";

    private static readonly byte[] MalformedEvent =
        "data: {\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"content\":\n\n"u8.ToArray();

    public UpstreamProtocol Kind => UpstreamProtocol.LlamaCpp;

    public ProtocolError? ValidateHeaders(HttpRequest request) => null;

    public ProtocolError? TryReadPrompt(JsonElement root, out ChatPrompt prompt)
    {
        prompt = null!;
        if (root.ValueKind == JsonValueKind.Object && !root.TryGetProperty("messages", out _))
        {
            return new ProtocolError(ErrorKind.InvalidRequest, "'messages' is required");
        }
        if (OpenAIRequestReader.TryRead(root, out var read) is { } error)
        {
            return error;
        }
        // llama.cpp accepts "text", "json_object" (optionally with "schema") and "json_schema" (schema at
        // json_schema.schema); the top-level "json_schema" extension is accepted too. The schema constrains
        // the answer as llama.cpp's grammar would (OpenAIRequestReader reads it; docs/fake-upstream.md).
        if (root.TryGetProperty("response_format", out var format) && format.ValueKind == JsonValueKind.Object
            && OpenAIRequestReader.String(format, "type") is { } type && type is not ("text" or "json_object" or "json_schema"))
        {
            return new ProtocolError(ErrorKind.InvalidRequest,
                "response_format type must be one of \"text\" or \"json_object\", but got: " + type);
        }
        prompt = read with
        {
            Model = read.Model ?? DefaultModel,
            // n_predict is llama.cpp's native name for the cap (-1: none).
            MaxTokens = read.MaxTokens ?? (OpenAIRequestReader.Int(root, "n_predict") is > 0 and var n ? n : null),
            TimingsPerToken = root.TryGetProperty("timings_per_token", out var perToken) && perToken.ValueKind == JsonValueKind.True,
        };
        return null;
    }

    public async Task WriteErrorAsync(HttpContext context, ProtocolError error)
    {
        var (status, type) = error.Kind switch
        {
            ErrorKind.InvalidRequest => (StatusCodes.Status400BadRequest, "invalid_request_error"),
            ErrorKind.Authentication => (StatusCodes.Status401Unauthorized, "authentication_error"),
            // llama.cpp has no rate-limit error type of its own; "unavailable_error" is its "not now".
            ErrorKind.RateLimit => (StatusCodes.Status429TooManyRequests, "unavailable_error"),
            ErrorKind.Overloaded => (StatusCodes.Status503ServiceUnavailable, "unavailable_error"),
            _ => (StatusCodes.Status500InternalServerError, "server_error"),
        };
        var json = JsonBody.Start(context, status, "application/json; charset=utf-8");
        json.WriteStartObject();
        json.WriteStartObject("error");
        json.WriteNumber("code", status);
        json.WriteString("message", error.Message);
        json.WriteString("type", type);
        json.WriteEndObject();
        json.WriteEndObject();
        await JsonBody.EndAsync(context, json);
    }

    public async Task WriteCompletionAsync(ChatExchange x)
    {
        var reply = x.Reply;
        var json = JsonBody.Start(x.Context, StatusCodes.Status200OK, "application/json; charset=utf-8");
        json.WriteStartObject();
        json.WriteStartArray("choices");
        json.WriteStartObject();
        json.WriteString("finish_reason", OpenAIProtocol.FinishReasonOf(reply.Finish));
        json.WriteNumber("index", 0);
        json.WriteStartObject("message");
        json.WriteString("role", "assistant");
        json.WritePropertyName("content");
        if (reply.ToolCall is { } call)
        {
            json.WriteNullValue();
            json.WriteStartArray("tool_calls");
            json.WriteStartObject();
            json.WriteString("type", "function");
            json.WriteStartObject("function");
            json.WriteString("name", call.Name);
            json.WriteString("arguments", call.ArgumentsJson);
            json.WriteEndObject();
            json.WriteString("id", ToolCallId);
            json.WriteEndObject();
            json.WriteEndArray();
        }
        else
        {
            await JsonBody.WriteTextAsync(x.Context, json, reply.Chunks);
        }
        json.WriteEndObject();
        json.WriteEndObject();
        json.WriteEndArray();
        json.WriteNumber("created", x.Created);
        json.WriteString("model", x.Prompt.Model);
        json.WriteString("system_fingerprint", SystemFingerprint);
        json.WriteString("object", "chat.completion");
        WriteUsage(json, reply);
        x.Usage.Report(reply.InputTokens, reply.OutputTokens);
        json.WriteString("id", "chatcmpl-" + x.IdSuffix);
        WriteTimings(json, reply.InputTokens, reply.OutputTokens);
        json.WriteEndObject();
        await JsonBody.EndAsync(x.Context, json);
    }

    public async Task WriteStreamAsync(ChatExchange x)
    {
        var reply = x.Reply;
        var perToken = x.Prompt.TimingsPerToken;
        using var sse = x.StartSse("text/event-stream", MalformedEvent);

        var json = await sse.BeginAsync(null);
        StartChunk(json, null);
        json.WriteString("role", "assistant");
        json.WriteNull("content");
        EndChunk(json, x, perToken, 0);
        await sse.EndAsync();

        var produced = 0;
        if (reply.ToolCall is { } call)
        {
            json = await sse.BeginAsync(null);
            StartChunk(json, null);
            WriteToolCallDelta(json, call.Name, "");
            EndChunk(json, x, perToken, produced);
            await sse.EndAsync();
            foreach (var fragment in call.Fragments)
            {
                json = await sse.BeginAsync(null);
                StartChunk(json, null);
                WriteToolCallDelta(json, null, fragment);
                EndChunk(json, x, perToken, ++produced);
                if (!await sse.EndAsync(contentChunk: true))
                {
                    return;
                }
            }
        }
        else
        {
            foreach (var chunk in reply.Chunks)
            {
                json = await sse.BeginAsync(null);
                StartChunk(json, null);
                json.WriteString("content", sse.Text(chunk));
                EndChunk(json, x, perToken, ++produced);
                if (!await sse.EndAsync(contentChunk: true))
                {
                    return;
                }
            }
        }
        if (!await sse.EndOfContentAsync())
        {
            return;
        }

        // The finish chunk carries the timings unless a usage chunk follows, which then carries them.
        json = await sse.BeginAsync(null);
        StartChunk(json, OpenAIProtocol.FinishReasonOf(reply.Finish));
        EndChunk(json, x, perToken || !x.Prompt.IncludeUsage, reply.OutputTokens);
        await sse.EndAsync();

        if (x.Prompt.IncludeUsage)
        {
            json = await sse.BeginAsync(null);
            json.WriteStartObject();
            json.WriteStartArray("choices");
            json.WriteEndArray();
            WriteChunkTail(json, x);
            WriteUsage(json, reply);
            WriteTimings(json, reply.InputTokens, reply.OutputTokens);
            json.WriteEndObject();
            x.Usage.Report(reply.InputTokens, reply.OutputTokens);
            await sse.EndAsync();
        }
        await sse.WriteDoneAsync();
        await sse.FinishAsync();
    }

    /// <summary>Writes up to the open <c>delta</c>: choice keys in llama.cpp's order finish_reason, index, delta.</summary>
    private static void StartChunk(Utf8JsonWriter json, string? finishReason)
    {
        json.WriteStartObject();
        json.WriteStartArray("choices");
        json.WriteStartObject();
        json.WriteString("finish_reason", finishReason);
        json.WriteNumber("index", 0);
        json.WriteStartObject("delta");
    }

    private static void EndChunk(Utf8JsonWriter json, ChatExchange x, bool withTimings, int predicted)
    {
        json.WriteEndObject();
        json.WriteEndObject();
        json.WriteEndArray();
        WriteChunkTail(json, x);
        if (withTimings)
        {
            WriteTimings(json, x.Reply.InputTokens, predicted);
        }
        json.WriteEndObject();
    }

    private static void WriteChunkTail(Utf8JsonWriter json, ChatExchange x)
    {
        json.WriteNumber("created", x.Created);
        json.WriteString("id", "chatcmpl-" + x.IdSuffix);
        json.WriteString("model", x.Prompt.Model);
        json.WriteString("system_fingerprint", SystemFingerprint);
        json.WriteString("object", "chat.completion.chunk");
    }

    private static void WriteToolCallDelta(Utf8JsonWriter json, string? name, string arguments)
    {
        json.WriteStartArray("tool_calls");
        json.WriteStartObject();
        json.WriteNumber("index", 0);
        if (name is not null)
        {
            json.WriteString("id", ToolCallId);
            json.WriteString("type", "function");
        }
        json.WriteStartObject("function");
        if (name is not null)
        {
            json.WriteString("name", name);
        }
        json.WriteString("arguments", arguments);
        json.WriteEndObject();
        json.WriteEndObject();
        json.WriteEndArray();
    }

    /// <summary>llama.cpp's usage_json_oaicompat: the OpenAI counts plus prompt_tokens_details.cached_tokens.</summary>
    private static void WriteUsage(Utf8JsonWriter json, Reply reply)
    {
        json.WriteStartObject("usage");
        json.WriteNumber("completion_tokens", reply.OutputTokens);
        json.WriteNumber("prompt_tokens", reply.InputTokens);
        json.WriteNumber("total_tokens", reply.InputTokens + reply.OutputTokens);
        json.WriteStartObject("prompt_tokens_details");
        json.WriteNumber("cached_tokens", 0);
        json.WriteEndObject();
        json.WriteEndObject();
    }

    /// <summary>
    /// The README's timings fields, with deterministic durations (1 ms per prompt token, 20 ms per
    /// generated token) so tests and dashboards see stable numbers.
    /// </summary>
    private static void WriteTimings(Utf8JsonWriter json, int promptTokens, int predictedTokens)
    {
        double promptMs = promptTokens * 1.0;
        double predictedMs = predictedTokens * 20.0;
        json.WriteStartObject("timings");
        json.WriteNumber("cache_n", 0);
        json.WriteNumber("prompt_n", promptTokens);
        json.WriteNumber("prompt_ms", promptMs);
        json.WriteNumber("prompt_per_token_ms", promptTokens > 0 ? promptMs / promptTokens : 0);
        json.WriteNumber("prompt_per_second", promptMs > 0 ? 1000.0 * promptTokens / promptMs : 0);
        json.WriteNumber("predicted_n", predictedTokens);
        json.WriteNumber("predicted_ms", predictedMs);
        json.WriteNumber("predicted_per_token_ms", predictedTokens > 0 ? predictedMs / predictedTokens : 0);
        json.WriteNumber("predicted_per_second", predictedMs > 0 ? 1000.0 * predictedTokens / predictedMs : 0);
        json.WriteEndObject();
    }
}
