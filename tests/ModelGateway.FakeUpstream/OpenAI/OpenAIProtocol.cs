using System.Text.Json;
using ModelGateway.FakeUpstream.Chat;

namespace ModelGateway.FakeUpstream.OpenAI;

/// <summary>
/// OpenAI chat completions, shaped field for field after the fixtures:
/// openai_chat_completion_response.json and openai_chat_tool_calls_response.json (non-streamed),
/// openai_chat_stream_text_usage.sse and openai_chat_stream_tool_call.sse (streamed),
/// openai_error_schema.json (errors).
/// </summary>
internal sealed class OpenAIProtocol : IChatProtocol
{
    public const string ToolCallId = "call_fake_1";

    // The recordings carry a system_fingerprint on every chunk.
    private const string SystemFingerprint = "fp_fake";

    // fault-malformed-chunk: a data line cut off in the middle of its JSON.
    private static readonly byte[] MalformedEvent =
        "data: {\"id\":\"chatcmpl-malformed\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\n\n"u8.ToArray();

    public UpstreamProtocol Kind => UpstreamProtocol.OpenAI;

    public ProtocolError? ValidateHeaders(HttpRequest request) => null;

    public ProtocolError? TryReadPrompt(JsonElement root, out ChatPrompt prompt)
    {
        if (OpenAIRequestReader.TryRead(root, out prompt) is { } error)
        {
            return error;
        }
        return prompt.Model is null
            ? new ProtocolError(ErrorKind.InvalidRequest, "you must provide a model parameter")
            : null;
    }

    public async Task WriteErrorAsync(HttpContext context, ProtocolError error)
    {
        var (status, type) = error.Kind switch
        {
            ErrorKind.InvalidRequest => (StatusCodes.Status400BadRequest, "invalid_request_error"),
            // OpenAI reports a bad key as an invalid_request_error with code invalid_api_key.
            ErrorKind.Authentication => (StatusCodes.Status401Unauthorized, "invalid_request_error"),
            ErrorKind.RateLimit => (StatusCodes.Status429TooManyRequests, "requests"),
            ErrorKind.Overloaded => (StatusCodes.Status503ServiceUnavailable, "server_error"),
            _ => (StatusCodes.Status500InternalServerError, "server_error"),
        };
        var json = JsonBody.Start(context, status);
        WriteErrorEnvelope(json, error, type);
        await JsonBody.EndAsync(context, json);
    }

    /// <summary>All four fields are required, param and code nullable (openai_error_schema.json).</summary>
    public static void WriteErrorEnvelope(Utf8JsonWriter json, ProtocolError error, string type)
    {
        json.WriteStartObject();
        json.WriteStartObject("error");
        json.WriteString("message", error.Message);
        json.WriteString("type", type);
        json.WriteString("param", error.Param);
        json.WriteString("code", error.Code);
        json.WriteEndObject();
        json.WriteEndObject();
    }

    public async Task WriteCompletionAsync(ChatExchange x)
    {
        var reply = x.Reply;
        var json = JsonBody.Start(x.Context, StatusCodes.Status200OK);
        json.WriteStartObject();
        json.WriteString("id", "chatcmpl-" + x.IdSuffix);
        json.WriteString("object", "chat.completion");
        json.WriteNumber("created", x.Created);
        json.WriteString("model", x.Prompt.Model);
        json.WriteStartArray("choices");
        json.WriteStartObject();
        json.WriteNumber("index", 0);
        json.WriteStartObject("message");
        json.WriteString("role", "assistant");
        json.WritePropertyName("content");
        if (reply.ToolCall is { } call)
        {
            // A tool-call answer has content null (openai_chat_tool_calls_response.json).
            json.WriteNullValue();
            json.WriteStartArray("tool_calls");
            json.WriteStartObject();
            json.WriteString("id", ToolCallId);
            json.WriteString("type", "function");
            json.WriteStartObject("function");
            json.WriteString("name", call.Name);
            json.WriteString("arguments", call.ArgumentsJson);
            json.WriteEndObject();
            json.WriteEndObject();
            json.WriteEndArray();
        }
        else
        {
            await JsonBody.WriteTextAsync(x.Context, json, reply.Chunks);
        }
        json.WriteNull("refusal");
        json.WriteStartArray("annotations");
        json.WriteEndArray();
        json.WriteEndObject();
        json.WriteNull("logprobs");
        json.WriteString("finish_reason", FinishReasonOf(reply.Finish));
        json.WriteEndObject();
        json.WriteEndArray();
        WriteUsage(json, reply);
        x.Usage.Report(reply.InputTokens, reply.OutputTokens);
        json.WriteString("service_tier", "default");
        json.WriteEndObject();
        await JsonBody.EndAsync(x.Context, json);
    }

    public async Task WriteStreamAsync(ChatExchange x)
    {
        var reply = x.Reply;
        using var sse = x.StartSse("text/event-stream; charset=utf-8", MalformedEvent);

        // First chunk: the role, with empty content for text (openai_chat_stream_text_usage.sse) or the
        // tool call's id, type, name and empty arguments (openai_chat_stream_tool_call.sse).
        var json = await sse.BeginAsync(null);
        StartChunk(json, x);
        json.WriteString("role", "assistant");
        if (reply.ToolCall is { } call)
        {
            json.WriteNull("content");
            json.WriteStartArray("tool_calls");
            json.WriteStartObject();
            json.WriteNumber("index", 0);
            json.WriteString("id", ToolCallId);
            json.WriteString("type", "function");
            json.WriteStartObject("function");
            json.WriteString("name", call.Name);
            json.WriteString("arguments", "");
            json.WriteEndObject();
            json.WriteEndObject();
            json.WriteEndArray();
        }
        else
        {
            json.WriteString("content", "");
        }
        json.WriteNull("refusal");
        EndChunk(json, x, null);
        await sse.EndAsync();

        if (reply.ToolCall is { } toolCall)
        {
            foreach (var fragment in toolCall.Fragments)
            {
                json = await sse.BeginAsync(null);
                StartChunk(json, x);
                json.WriteStartArray("tool_calls");
                json.WriteStartObject();
                json.WriteNumber("index", 0);
                json.WriteStartObject("function");
                json.WriteString("arguments", fragment);
                json.WriteEndObject();
                json.WriteEndObject();
                json.WriteEndArray();
                EndChunk(json, x, null);
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
                StartChunk(json, x);
                json.WriteString("content", sse.Text(chunk));
                EndChunk(json, x, null);
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

        json = await sse.BeginAsync(null);
        StartChunk(json, x);
        EndChunk(json, x, FinishReasonOf(reply.Finish));
        await sse.EndAsync();

        // Only when asked (stream_options.include_usage): one more chunk with "choices": [] and the usage.
        if (x.Prompt.IncludeUsage)
        {
            json = await sse.BeginAsync(null);
            WriteChunkHeader(json, x);
            json.WriteStartArray("choices");
            json.WriteEndArray();
            WriteUsage(json, reply);
            json.WriteEndObject();
            x.Usage.Report(reply.InputTokens, reply.OutputTokens);
            await sse.EndAsync();
        }
        await sse.WriteDoneAsync();
        await sse.FinishAsync();
    }

    public static string FinishReasonOf(FinishReason finish) => finish switch
    {
        FinishReason.Length => "length",
        FinishReason.ToolCall => "tool_calls",
        _ => "stop",
    };

    private static void WriteChunkHeader(Utf8JsonWriter json, ChatExchange x)
    {
        json.WriteStartObject();
        json.WriteString("id", "chatcmpl-" + x.IdSuffix);
        json.WriteString("object", "chat.completion.chunk");
        json.WriteNumber("created", x.Created);
        json.WriteString("model", x.Prompt.Model);
        json.WriteString("system_fingerprint", SystemFingerprint);
    }

    /// <summary>Writes up to the open <c>delta</c> object of choice 0.</summary>
    private static void StartChunk(Utf8JsonWriter json, ChatExchange x)
    {
        WriteChunkHeader(json, x);
        json.WriteStartArray("choices");
        json.WriteStartObject();
        json.WriteNumber("index", 0);
        json.WriteStartObject("delta");
    }

    private static void EndChunk(Utf8JsonWriter json, ChatExchange x, string? finishReason)
    {
        json.WriteEndObject();
        json.WriteNull("logprobs");
        json.WriteString("finish_reason", finishReason);
        json.WriteEndObject();
        json.WriteEndArray();
        // With include_usage every chunk but the last carries "usage": null (OpenAI API reference,
        // chat.completion.chunk); without it the key is absent, as in the recordings.
        if (x.Prompt.IncludeUsage)
        {
            json.WriteNull("usage");
        }
        json.WriteEndObject();
    }

    /// <summary>The usage object of openai_chat_completion_response.json, details included.</summary>
    private static void WriteUsage(Utf8JsonWriter json, Reply reply)
    {
        json.WriteStartObject("usage");
        json.WriteNumber("prompt_tokens", reply.InputTokens);
        json.WriteNumber("completion_tokens", reply.OutputTokens);
        json.WriteNumber("total_tokens", reply.InputTokens + reply.OutputTokens);
        json.WriteStartObject("prompt_tokens_details");
        json.WriteNumber("cached_tokens", 0);
        json.WriteNumber("audio_tokens", 0);
        json.WriteEndObject();
        json.WriteStartObject("completion_tokens_details");
        json.WriteNumber("reasoning_tokens", 0);
        json.WriteNumber("audio_tokens", 0);
        json.WriteNumber("accepted_prediction_tokens", 0);
        json.WriteNumber("rejected_prediction_tokens", 0);
        json.WriteEndObject();
        json.WriteEndObject();
    }
}
