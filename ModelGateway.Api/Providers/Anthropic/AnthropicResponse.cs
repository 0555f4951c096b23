using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ModelGateway.Api.Providers.Anthropic;

/// <summary>Anthropic answers, errors and usage in OpenAI's terms; shared by the non-streaming and streaming paths.</summary>
internal static class AnthropicResponse
{
    /// <summary>
    /// A <c>message</c> body (https://docs.anthropic.com/en/api/messages, response) as a <c>chat.completion</c>
    /// (https://platform.openai.com/docs/api-reference/chat/object), read in one forward pass and written straight to bytes, with
    /// no document in between: text blocks joined into <c>content</c>, <c>tool_use</c> blocks as <c>tool_calls</c> whose
    /// arguments are the JSON text of <c>input</c> as Anthropic wrote it (the streaming path relays the same text in its
    /// <c>input_json_delta</c> fragments). Thinking and server-tool blocks have no OpenAI counterpart and are left out; fields of
    /// the wrong type count as absent. Throws <see cref="JsonException"/> when the body is not a UTF-8 JSON object.
    /// </summary>
    /// <remarks>With <paramref name="structured"/>, the response tool's input is the content (<see cref="AnthropicStructuredOutput"/>).</remarks>
    public static ProviderCompletion Translate(ReadOnlySpan<byte> body, long created, AnthropicStructuredOutput? structured = null)
    {
        var reader = CompletionScan.OpenAnswer(body); // checks all the UTF-8: tool input is copied as it came
        string? id = null, model = null, stopReason = null;
        var content = new ContentParts();
        AnthropicUsage counts = default;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("id"u8))
            {
                id = CompletionScan.ReadString(ref reader);
            }
            else if (reader.ValueTextEquals("model"u8))
            {
                model = CompletionScan.ReadString(ref reader);
            }
            else if (reader.ValueTextEquals("stop_reason"u8))
            {
                stopReason = CompletionScan.ReadString(ref reader);
            }
            else if (reader.ValueTextEquals("content"u8))
            {
                reader.Read();
                content = reader.TokenType == JsonTokenType.StartArray ? ReadBlocks(ref reader, body, structured) : CompletionScan.SkipValue(ref reader, new ContentParts());
            }
            else if (reader.ValueTextEquals("usage"u8))
            {
                reader.Read();
                counts = reader.TokenType == JsonTokenType.StartObject ? ReadCounts(ref reader) : CompletionScan.SkipValue(ref reader, default(AnthropicUsage));
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
        CompletionScan.ReadToEnd(ref reader);

        var usage = counts.ToTokenUsage();
        var finish = FinishReason(stopReason);
        if (finish is "tool_calls" && structured is not null && content.ToolCalls is null)
        {
            finish = "stop"; // the model answered through the response tool: for the client that is an ordinary answer
        }
        using var translated = PooledJsonWriter.Rent(relaxedEscaping: true);
        var w = translated.Writer;
        w.WriteStartObject();
        WriteStringOrNull(w, "id"u8, id);
        w.WriteString("object"u8, "chat.completion"u8);
        w.WriteNumber("created"u8, created);
        WriteStringOrNull(w, "model"u8, model);
        w.WriteStartArray("choices"u8);
        w.WriteStartObject();
        w.WriteNumber("index"u8, 0);
        w.WriteStartObject("message"u8);
        w.WriteString("role"u8, "assistant"u8);
        WriteStringOrNull(w, "content"u8, content.Text);
        w.WriteNull("refusal"u8);
        if (content.ToolCalls is { } calls)
        {
            w.WriteStartArray("tool_calls"u8);
            foreach (var call in calls)
            {
                w.WriteStartObject();
                WriteStringOrNull(w, "id"u8, call.Id);
                w.WriteString("type"u8, "function"u8);
                w.WriteStartObject("function"u8);
                WriteStringOrNull(w, "name"u8, call.Name);
                w.WriteString("arguments"u8, call.Arguments);
                w.WriteEndObject();
                w.WriteEndObject();
            }
            w.WriteEndArray();
        }
        w.WriteEndObject();
        w.WriteNull("logprobs"u8);
        WriteStringOrNull(w, "finish_reason"u8, finish);
        w.WriteEndObject();
        w.WriteEndArray();
        w.WritePropertyName("usage"u8);
        usage.WriteOpenAIUsage(w);
        w.WriteEndObject();
        return new ProviderCompletion(translated.ToArray(), usage, id, model, finish);
    }

    private sealed record ToolCall(string? Id, string? Name, string Arguments);

    /// <summary>What the content blocks add up to: the joined text (null when there was none) and the tool calls in order.</summary>
    private readonly record struct ContentParts(string? Text = null, List<ToolCall>? ToolCalls = null);

    /// <summary>The <c>content</c> array, the reader on its start; leaves the reader on its end.</summary>
    private static ContentParts ReadBlocks(ref Utf8JsonReader reader, ReadOnlySpan<byte> body, AnthropicStructuredOutput? structured)
    {
        string? text = null;
        List<ToolCall>? toolCalls = null;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                reader.Skip();
                continue;
            }
            // A block's fields come in any order, so the input is kept as a range of the body until the type is known.
            string? type = null, blockText = null, blockId = null, name = null;
            Range? input = null;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("type"u8))
                {
                    type = CompletionScan.ReadString(ref reader);
                }
                else if (reader.ValueTextEquals("text"u8))
                {
                    blockText = CompletionScan.ReadString(ref reader);
                }
                else if (reader.ValueTextEquals("id"u8))
                {
                    blockId = CompletionScan.ReadString(ref reader);
                }
                else if (reader.ValueTextEquals("name"u8))
                {
                    name = CompletionScan.ReadString(ref reader);
                }
                else if (reader.ValueTextEquals("input"u8))
                {
                    reader.Read();
                    input = reader.TokenType == JsonTokenType.Null ? null : ValueRange(ref reader);
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }
            switch (type)
            {
                case "text":
                    text += blockText ?? ""; // a text block whose text is not a string still makes the content a string
                    break;
                case "tool_use" when structured is not null && name == structured.ToolName:
                    text += structured.ContentOf(body, input);
                    break;
                case "tool_use":
                    (toolCalls ??= []).Add(new ToolCall(blockId, name, input is { } r ? Encoding.UTF8.GetString(body[r]) : "{}"));
                    break;
            }
        }
        return new ContentParts(text, toolCalls);
    }

    /// <summary>The range of the body holding the value the reader is on (its first token); leaves the reader on its last.</summary>
    internal static Range ValueRange(ref Utf8JsonReader reader)
    {
        var start = (int)reader.TokenStartIndex;
        reader.Skip();
        return start..(int)reader.BytesConsumed;
    }

    /// <summary>Anthropic's four counts from a <c>usage</c> object, the reader on its start; leaves the reader on its end.</summary>
    private static AnthropicUsage ReadCounts(ref Utf8JsonReader reader)
    {
        int input = 0, cacheRead = 0, cacheCreation = 0, output = 0;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("input_tokens"u8))
            {
                input = CompletionScan.ReadInt(ref reader);
            }
            else if (reader.ValueTextEquals("cache_read_input_tokens"u8))
            {
                cacheRead = CompletionScan.ReadInt(ref reader);
            }
            else if (reader.ValueTextEquals("cache_creation_input_tokens"u8))
            {
                cacheCreation = CompletionScan.ReadInt(ref reader);
            }
            else if (reader.ValueTextEquals("output_tokens"u8))
            {
                output = CompletionScan.ReadInt(ref reader);
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
        return new AnthropicUsage(input, cacheRead, cacheCreation, output);
    }

    private static void WriteStringOrNull(Utf8JsonWriter writer, ReadOnlySpan<byte> name, string? value)
    {
        if (value is null)
        {
            writer.WriteNull(name);
        }
        else
        {
            writer.WriteString(name, value);
        }
    }

    /// <summary>
    /// Anthropic <c>stop_reason</c> (stop reasons guide) → OpenAI <c>finish_reason</c>. pause_turn (a server-tool loop
    /// paused) ends the turn as far as the client can tell; a refusal is OpenAI's content_filter.
    /// </summary>
    public static string? FinishReason(string? stopReason) => stopReason switch
    {
        null => null,
        "end_turn" or "stop_sequence" or "pause_turn" => "stop",
        "max_tokens" or "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    };

    /// <summary>
    /// Reads Anthropic's counts from a stream event's <c>usage</c>. <paramref name="previous"/> supplies the counts an event
    /// leaves out (or gives in the wrong type): <c>message_delta</c> usage is cumulative but may carry only
    /// <c>output_tokens</c> (streaming guide, "Event types").
    /// </summary>
    public static AnthropicUsage ReadCounts(JsonElement usage, AnthropicUsage previous) => new(
        Int(usage, "input_tokens"u8) ?? previous.Input,
        Int(usage, "cache_read_input_tokens"u8) ?? previous.CacheRead,
        Int(usage, "cache_creation_input_tokens"u8) ?? previous.CacheCreation,
        Int(usage, "output_tokens"u8) ?? previous.Output);

    /// <summary>
    /// Anthropic error type (errors guide, "HTTP errors") → OpenAI error type. Authentication and permission errors are the
    /// gateway's own credentials failing, not the client's, so they are api_error like overloaded_error and api_error.
    /// </summary>
    public static string OpenAIErrorType(string? anthropicType) => anthropicType switch
    {
        "invalid_request_error" or "not_found_error" or "request_too_large" => "invalid_request_error",
        "rate_limit_error" => "rate_limit_error",
        _ => "api_error",
    };

    /// <summary>An <c>{"type":"error","error":{type,message}}</c> body or event, read defensively.</summary>
    public static (string? Type, string? Message) ReadError(JsonNode? body) =>
        body?["error"] is JsonObject e ? (StringOf(e["type"]), StringOf(e["message"])) : (null, null);

    private static int? Int(JsonElement o, ReadOnlySpan<byte> name) =>
        o.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out var i) ? i : null;

    private static string? StringOf(JsonNode? node) =>
        node is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : null;
}

/// <summary>
/// Anthropic's four counts, kept apart until they are folded into OpenAI's two. Anthropic's <c>input_tokens</c> excludes the
/// cached prefix, so OpenAI's <c>prompt_tokens</c> is input + cache reads + cache writes, and the cache reads are the cached
/// tokens (prompt caching guide, "Tracking cache performance").
/// </summary>
internal readonly record struct AnthropicUsage(int Input, int CacheRead, int CacheCreation, int Output)
{
    public TokenUsage ToTokenUsage() => new(Input + CacheRead + CacheCreation, Output, CacheRead);
}
