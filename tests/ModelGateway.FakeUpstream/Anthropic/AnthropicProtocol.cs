using System.Text.Json;
using ModelGateway.FakeUpstream.Chat;

namespace ModelGateway.FakeUpstream.Anthropic;

/// <summary>
/// Anthropic Messages, shaped after anthropic_message_response.json and
/// anthropic_message_tool_use_response.json (non-streamed), anthropic_stream_text_recorded.sse and
/// anthropic_stream_tool_use.sse (the event sequence), and anthropic_error_*.json (errors).
/// </summary>
internal sealed class AnthropicProtocol : IChatProtocol
{
    public const string ToolUseId = "toolu_fake_1";

    private static readonly byte[] MessageStart = "message_start"u8.ToArray();
    private static readonly byte[] ContentBlockStart = "content_block_start"u8.ToArray();
    private static readonly byte[] Ping = "ping"u8.ToArray();
    private static readonly byte[] ContentBlockDelta = "content_block_delta"u8.ToArray();
    private static readonly byte[] ContentBlockStop = "content_block_stop"u8.ToArray();
    private static readonly byte[] MessageDelta = "message_delta"u8.ToArray();
    private static readonly byte[] MessageStop = "message_stop"u8.ToArray();

    // The ping's data keeps the documented bytes, space included (anthropic_stream_text.sse).
    private static readonly byte[] PingData = "{\"type\": \"ping\"}"u8.ToArray();

    private static readonly byte[] MalformedEvent =
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\n\n"u8.ToArray();

    public UpstreamProtocol Kind => UpstreamProtocol.Anthropic;

    /// <summary>
    /// The API checks credentials and the version header before it reads the body: no x-api-key is a
    /// 401 authentication_error, no anthropic-version a 400 invalid_request_error.
    /// </summary>
    public ProtocolError? ValidateHeaders(HttpRequest request)
    {
        if (string.IsNullOrEmpty(request.Headers["x-api-key"]))
        {
            return new ProtocolError(ErrorKind.Authentication, "x-api-key header is required");
        }
        if (string.IsNullOrEmpty(request.Headers["anthropic-version"]))
        {
            return new ProtocolError(ErrorKind.InvalidRequest, "anthropic-version: header is required");
        }
        return null;
    }

    public ProtocolError? TryReadPrompt(JsonElement root, out ChatPrompt prompt) => AnthropicRequestReader.TryRead(root, out prompt);

    /// <summary>
    /// <c>{"type":"error","error":{"type","message"},"request_id"}</c>; a 503-class overload is HTTP 529
    /// overloaded_error (anthropic_error_overloaded_529.json).
    /// </summary>
    public async Task WriteErrorAsync(HttpContext context, ProtocolError error)
    {
        var (status, type) = error.Kind switch
        {
            ErrorKind.InvalidRequest => (StatusCodes.Status400BadRequest, "invalid_request_error"),
            ErrorKind.Authentication => (StatusCodes.Status401Unauthorized, "authentication_error"),
            ErrorKind.RateLimit => (StatusCodes.Status429TooManyRequests, "rate_limit_error"),
            ErrorKind.Overloaded => (529, "overloaded_error"),
            _ => (StatusCodes.Status500InternalServerError, "api_error"),
        };
        var requestId = "req_fake" + Guid.NewGuid().ToString("N");
        context.Response.Headers["request-id"] = requestId;
        var json = JsonBody.Start(context, status);
        json.WriteStartObject();
        json.WriteString("type", "error");
        json.WriteStartObject("error");
        json.WriteString("type", type);
        json.WriteString("message", error.Message);
        json.WriteEndObject();
        json.WriteString("request_id", requestId);
        json.WriteEndObject();
        await JsonBody.EndAsync(context, json);
    }

    public async Task WriteCompletionAsync(ChatExchange x)
    {
        var reply = x.Reply;
        var json = JsonBody.Start(x.Context, StatusCodes.Status200OK);
        json.WriteStartObject();
        json.WriteString("model", x.Prompt.Model);
        json.WriteString("id", "msg_fake" + x.IdSuffix);
        json.WriteString("type", "message");
        json.WriteString("role", "assistant");
        json.WriteStartArray("content");
        json.WriteStartObject();
        if (reply.ToolCall is { } call)
        {
            json.WriteString("type", "tool_use");
            json.WriteString("id", ToolUseId);
            json.WriteString("name", call.Name);
            json.WritePropertyName("input");
            json.WriteRawValue(call.ArgumentsJson, skipInputValidation: true);
        }
        else
        {
            json.WriteString("type", "text");
            json.WritePropertyName("text");
            await JsonBody.WriteTextAsync(x.Context, json, reply.Chunks);
        }
        json.WriteEndObject();
        json.WriteEndArray();
        json.WriteString("stop_reason", StopReasonOf(reply.Finish));
        json.WriteString("stop_sequence", reply.MatchedStop);
        WriteFullUsage(json, reply.InputTokens, reply.OutputTokens);
        x.Usage.Report(reply.InputTokens, reply.OutputTokens);
        json.WriteEndObject();
        await JsonBody.EndAsync(x.Context, json);
    }

    /// <summary>
    /// message_start, content_block_start, ping, one content_block_delta per word (or input_json_delta
    /// fragments after an empty one for tool_use), content_block_stop, message_delta, message_stop.
    /// </summary>
    public async Task WriteStreamAsync(ChatExchange x)
    {
        var reply = x.Reply;
        using var sse = x.StartSse("text/event-stream; charset=utf-8", MalformedEvent);

        // message_start reports the input and output_tokens 1, as the API does before generating.
        var json = await sse.BeginAsync(MessageStart);
        json.WriteStartObject();
        json.WriteString("type", "message_start");
        json.WriteStartObject("message");
        json.WriteString("model", x.Prompt.Model);
        json.WriteString("id", "msg_fake" + x.IdSuffix);
        json.WriteString("type", "message");
        json.WriteString("role", "assistant");
        json.WriteStartArray("content");
        json.WriteEndArray();
        json.WriteNull("stop_reason");
        json.WriteNull("stop_sequence");
        WriteFullUsage(json, reply.InputTokens, 1);
        json.WriteEndObject();
        json.WriteEndObject();
        x.Usage.Report(reply.InputTokens, 1);
        await sse.EndAsync();

        json = await sse.BeginAsync(ContentBlockStart);
        json.WriteStartObject();
        json.WriteString("type", "content_block_start");
        json.WriteNumber("index", 0);
        json.WriteStartObject("content_block");
        if (reply.ToolCall is { } call)
        {
            json.WriteString("type", "tool_use");
            json.WriteString("id", ToolUseId);
            json.WriteString("name", call.Name);
            json.WriteStartObject("input");
            json.WriteEndObject();
        }
        else
        {
            json.WriteString("type", "text");
            json.WriteString("text", "");
        }
        json.WriteEndObject();
        json.WriteEndObject();
        await sse.EndAsync();

        await sse.WriteRawAsync(Ping, PingData);

        if (reply.ToolCall is { } toolCall)
        {
            // The first input_json_delta is empty (anthropic_stream_tool_use.sse); it carries no content.
            await WriteDeltaAsync(sse, "input_json_delta", "partial_json", "", contentChunk: false);
            foreach (var fragment in toolCall.Fragments)
            {
                if (!await WriteDeltaAsync(sse, "input_json_delta", "partial_json", fragment, contentChunk: true))
                {
                    return;
                }
            }
        }
        else
        {
            foreach (var chunk in reply.Chunks)
            {
                if (!await WriteDeltaAsync(sse, "text_delta", "text", chunk, contentChunk: true))
                {
                    return;
                }
            }
        }
        if (!await sse.EndOfContentAsync())
        {
            return;
        }

        json = await sse.BeginAsync(ContentBlockStop);
        json.WriteStartObject();
        json.WriteString("type", "content_block_stop");
        json.WriteNumber("index", 0);
        json.WriteEndObject();
        await sse.EndAsync();

        // message_delta usage is cumulative and, in real streams, repeats the input and cache counts
        // (anthropic_stream_text_recorded.sse).
        json = await sse.BeginAsync(MessageDelta);
        json.WriteStartObject();
        json.WriteString("type", "message_delta");
        json.WriteStartObject("delta");
        json.WriteString("stop_reason", StopReasonOf(reply.Finish));
        json.WriteString("stop_sequence", reply.MatchedStop);
        json.WriteEndObject();
        json.WriteStartObject("usage");
        json.WriteNumber("input_tokens", reply.InputTokens);
        json.WriteNumber("cache_creation_input_tokens", 0);
        json.WriteNumber("cache_read_input_tokens", 0);
        json.WriteNumber("output_tokens", reply.OutputTokens);
        json.WriteEndObject();
        json.WriteEndObject();
        x.Usage.Report(reply.InputTokens, reply.OutputTokens);
        await sse.EndAsync();

        json = await sse.BeginAsync(MessageStop);
        json.WriteStartObject();
        json.WriteString("type", "message_stop");
        json.WriteEndObject();
        await sse.EndAsync();
        await sse.FinishAsync();
    }

    public static string StopReasonOf(FinishReason finish) => finish switch
    {
        FinishReason.Length => "max_tokens",
        FinishReason.StopSequence => "stop_sequence",
        FinishReason.ToolCall => "tool_use",
        _ => "end_turn",
    };

    private static async ValueTask<bool> WriteDeltaAsync(SseWriter sse, string type, string field, string value, bool contentChunk)
    {
        var json = await sse.BeginAsync(ContentBlockDelta);
        json.WriteStartObject();
        json.WriteString("type", "content_block_delta");
        json.WriteNumber("index", 0);
        json.WriteStartObject("delta");
        json.WriteString("type", type);
        json.WriteString(field, type == "text_delta" ? sse.Text(value) : value); // stamped once the event's delay has passed
        json.WriteEndObject();
        json.WriteEndObject();
        return await sse.EndAsync(contentChunk);
    }

    /// <summary>The usage object of anthropic_message_response.json, cache fields included (always 0 here).</summary>
    private static void WriteFullUsage(Utf8JsonWriter json, int inputTokens, int outputTokens)
    {
        json.WriteStartObject("usage");
        json.WriteNumber("input_tokens", inputTokens);
        json.WriteNumber("cache_creation_input_tokens", 0);
        json.WriteNumber("cache_read_input_tokens", 0);
        json.WriteStartObject("cache_creation");
        json.WriteNumber("ephemeral_5m_input_tokens", 0);
        json.WriteNumber("ephemeral_1h_input_tokens", 0);
        json.WriteEndObject();
        json.WriteNumber("output_tokens", outputTokens);
        json.WriteString("service_tier", "standard");
        json.WriteString("inference_geo", "not_available");
        json.WriteEndObject();
    }
}
