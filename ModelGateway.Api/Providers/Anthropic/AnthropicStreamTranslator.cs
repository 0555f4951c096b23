using System.Buffers;
using System.Text.Json;
using System.Text.Json.Nodes;
using ModelGateway.Api.Errors;

namespace ModelGateway.Api.Providers.Anthropic;

/// <summary>
/// Translates one Anthropic Messages stream (streaming guide, https://docs.anthropic.com/en/docs/build-with-claude/streaming)
/// event by event into OpenAI <c>chat.completion.chunk</c>s (https://platform.openai.com/docs/api-reference/chat-streaming):
/// <list type="bullet">
/// <item><c>message_start</c> → the role chunk; its id and model are kept for every later chunk.</item>
/// <item><c>content_block_delta</c> <c>text_delta</c> → a content chunk.</item>
/// <item><c>content_block_start</c> of a <c>tool_use</c> → a tool_calls chunk with the call's index, id and name;
/// <c>input_json_delta</c> → tool_calls chunks with argument fragments.</item>
/// <item><c>message_delta</c> → the finish_reason chunk (usage noted); <c>message_stop</c> → the usage chunk
/// (<c>choices: []</c>).</item>
/// <item><c>error</c> → an OpenAI error envelope; <c>ping</c>, block stops, thinking and unknown events → nothing.</item>
/// </list>
/// One instance per stream; not thread-safe. Each event is read with a pooled <see cref="JsonDocument"/> and written with
/// one reused <see cref="Utf8JsonWriter"/> into one buffer, which the next event overwrites.
/// </summary>
internal sealed class AnthropicStreamTranslator
{
    private static readonly JsonEncodedText ChunkObject = JsonEncodedText.Encode("chat.completion.chunk");

    private readonly ArrayBufferWriter<byte> _buffer = new(512);
    private readonly Utf8JsonWriter _writer;
    private readonly long _created;
    private JsonEncodedText _id = JsonEncodedText.Encode("");
    private JsonEncodedText _model = JsonEncodedText.Encode("");
    private AnthropicUsage _counts;
    private string? _finishReason;

    /// <summary>OpenAI numbers tool calls 0, 1, ...; Anthropic numbers all content blocks. Block index → tool-call index.</summary>
    private Dictionary<int, int>? _toolIndexByBlock;

    /// <summary>The structured-output tool, whose input is streamed as content; null when the client asked for none.</summary>
    private readonly AnthropicStructuredOutput? _structured;

    /// <summary>The content block index of the structured-output tool call, once it has started.</summary>
    private int? _structuredBlock;

    /// <summary>A wrapped schema's input, collected until its block stops (the wrapper cannot be stripped fragment by fragment).</summary>
    private System.Text.StringBuilder? _wrappedInput;

    public AnthropicStreamTranslator(long created, AnthropicStructuredOutput? structured = null)
    {
        _created = created;
        _structured = structured;
        // One writer for the whole stream (the pooled ones are for bodies written at once), with the same escaping.
        _writer = new Utf8JsonWriter(_buffer, PooledJsonWriter.RelaxedOptions);
    }

    /// <summary>Whether <c>message_stop</c> has arrived: anything less is a stream cut short.</summary>
    public bool Completed { get; private set; }

    public bool TryTranslate(ReadOnlyMemory<byte> data, out StreamEvent streamEvent)
    {
        using var document = JsonDocument.Parse(data);
        var root = document.RootElement;
        streamEvent = default;
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("type"u8, out var type))
        {
            throw new JsonException("An Anthropic stream event has no type.");
        }
        if (type.ValueEquals("content_block_delta"u8))
        {
            return TranslateDelta(root, out streamEvent);
        }
        if (type.ValueEquals("content_block_start"u8))
        {
            return TranslateBlockStart(root, out streamEvent);
        }
        if (type.ValueEquals("message_start"u8))
        {
            return TranslateMessageStart(root, out streamEvent);
        }
        if (type.ValueEquals("message_delta"u8))
        {
            return TranslateMessageDelta(root, out streamEvent);
        }
        if (type.ValueEquals("content_block_stop"u8) && _structuredBlock is { } block && _wrappedInput is not null
            && root.TryGetProperty("index"u8, out var stopIndex) && stopIndex.GetInt32() == block)
        {
            JsonNode? input = null;
            try
            {
                input = _wrappedInput.Length == 0 ? null : JsonNode.Parse(_wrappedInput.ToString());
            }
            catch (JsonException)
            {
                // Anthropic's tool input is always JSON; if not, the gateway's validation reports it.
            }
            var content = input is null ? _wrappedInput.ToString() : _structured!.ContentOf(input);
            _wrappedInput = null;
            return content.Length > 0 && ContentChunk(content, out streamEvent);
        }
        if (type.ValueEquals("message_stop"u8))
        {
            Completed = true;
            streamEvent = new StreamEvent(StreamEventKind.Usage, UsageChunk(), Usage());
            return true;
        }
        if (type.ValueEquals("error"u8))
        {
            streamEvent = new StreamEvent(StreamEventKind.Error, ErrorEnvelope(root));
            return true;
        }
        // ping, content_block_stop and event types added later carry nothing for an OpenAI client.
        return false;
    }

    private bool TranslateMessageStart(JsonElement root, out StreamEvent streamEvent)
    {
        if (root.TryGetProperty("message"u8, out var message) && message.ValueKind == JsonValueKind.Object)
        {
            if (message.TryGetProperty("id"u8, out var id) && id.ValueKind == JsonValueKind.String)
            {
                _id = JsonEncodedText.Encode(id.GetString()!);
            }
            if (message.TryGetProperty("model"u8, out var model) && model.ValueKind == JsonValueKind.String)
            {
                _model = JsonEncodedText.Encode(model.GetString()!);
            }
            NoteUsage(message);
        }
        StartChunk();
        _writer.WriteString("role", "assistant");
        _writer.WriteString("content", "");
        EndChunk(null);
        streamEvent = new StreamEvent(StreamEventKind.Chunk, Written());
        return true;
    }

    private bool TranslateBlockStart(JsonElement root, out StreamEvent streamEvent)
    {
        streamEvent = default;
        if (!root.TryGetProperty("content_block"u8, out var block) || !block.TryGetProperty("type"u8, out var type))
        {
            return false;
        }
        if (type.ValueEquals("text"u8))
        {
            // The block starts empty in practice; text it did carry is content like any delta.
            var text = block.TryGetProperty("text"u8, out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()! : "";
            return text.Length > 0 && ContentChunk(text, out streamEvent);
        }
        if (!type.ValueEquals("tool_use"u8))
        {
            // thinking, redacted_thinking, server_tool_use and its results: nothing an OpenAI client can take.
            return false;
        }
        if (_structured is not null && block.TryGetProperty("name"u8, out var toolName) && toolName.ValueEquals(_structured.ToolName))
        {
            // The response tool: its input is the answer, streamed as content deltas (input_json_delta → content).
            _structuredBlock = root.GetProperty("index"u8).GetInt32();
            var initial = block.TryGetProperty("input"u8, out var given) && given.ValueKind == JsonValueKind.Object
                          && given.EnumerateObject().MoveNext() ? given.GetRawText() : "";
            if (_structured.Wrapped)
            {
                _wrappedInput = new System.Text.StringBuilder(initial);
                return false;
            }
            return initial.Length > 0 && ContentChunk(initial, out streamEvent);
        }
        _toolIndexByBlock ??= [];
        var toolIndex = _toolIndexByBlock.Count;
        _toolIndexByBlock[root.GetProperty("index"u8).GetInt32()] = toolIndex;
        // The input arrives as input_json_delta fragments; a start that already carries input passes it as the first fragment.
        var arguments = block.TryGetProperty("input"u8, out var input) && input.ValueKind == JsonValueKind.Object
                        && input.EnumerateObject().MoveNext() ? input.GetRawText() : "";
        StartChunk();
        _writer.WriteStartArray("tool_calls");
        _writer.WriteStartObject();
        _writer.WriteNumber("index", toolIndex);
        _writer.WriteString("id", block.TryGetProperty("id"u8, out var id) ? id.GetString() : "");
        _writer.WriteString("type", "function");
        _writer.WriteStartObject("function");
        _writer.WriteString("name", block.TryGetProperty("name"u8, out var name) ? name.GetString() : "");
        _writer.WriteString("arguments", arguments);
        _writer.WriteEndObject();
        _writer.WriteEndObject();
        _writer.WriteEndArray();
        EndChunk(null);
        streamEvent = new StreamEvent(StreamEventKind.Chunk, Written(), ContentDelta: arguments.Length > 0 ? arguments : null);
        return true;
    }

    private bool TranslateDelta(JsonElement root, out StreamEvent streamEvent)
    {
        streamEvent = default;
        if (!root.TryGetProperty("delta"u8, out var delta) || !delta.TryGetProperty("type"u8, out var type))
        {
            return false;
        }
        if (type.ValueEquals("text_delta"u8))
        {
            return ContentChunk(delta.GetProperty("text"u8).GetString()!, out streamEvent);
        }
        if (type.ValueEquals("input_json_delta"u8) && _structuredBlock is { } structuredBlock
            && root.GetProperty("index"u8).GetInt32() == structuredBlock)
        {
            var part = delta.GetProperty("partial_json"u8).GetString()!;
            if (_wrappedInput is not null)
            {
                _wrappedInput.Append(part);
                return false;
            }
            return part.Length > 0 && ContentChunk(part, out streamEvent);
        }
        if (!type.ValueEquals("input_json_delta"u8)
            || _toolIndexByBlock is null
            || !_toolIndexByBlock.TryGetValue(root.GetProperty("index"u8).GetInt32(), out var toolIndex))
        {
            // thinking_delta, signature_delta, citations_delta, or input of a server tool.
            return false;
        }
        var fragment = delta.GetProperty("partial_json"u8).GetString()!;
        if (fragment.Length == 0)
        {
            return false;
        }
        StartChunk();
        _writer.WriteStartArray("tool_calls");
        _writer.WriteStartObject();
        _writer.WriteNumber("index", toolIndex);
        _writer.WriteStartObject("function");
        _writer.WriteString("arguments", fragment);
        _writer.WriteEndObject();
        _writer.WriteEndObject();
        _writer.WriteEndArray();
        EndChunk(null);
        streamEvent = new StreamEvent(StreamEventKind.Chunk, Written(), ContentDelta: fragment);
        return true;
    }

    private bool TranslateMessageDelta(JsonElement root, out StreamEvent streamEvent)
    {
        NoteUsage(root);
        streamEvent = default;
        if (!root.TryGetProperty("delta"u8, out var delta) || !delta.TryGetProperty("stop_reason"u8, out var stop)
            || stop.ValueKind != JsonValueKind.String)
        {
            return false;
        }
        _finishReason = AnthropicResponse.FinishReason(stop.GetString());
        if (_finishReason == "tool_calls" && _structuredBlock is not null && _toolIndexByBlock is null)
        {
            // Only the response tool was called: to the client that is a finished answer.
            _finishReason = "stop";
        }
        StartChunk();
        EndChunk(_finishReason);
        // The usage rides along too, so a stream cut before message_stop is still billed by the provider's count.
        streamEvent = new StreamEvent(StreamEventKind.Chunk, Written(), Usage(), _finishReason);
        return true;
    }

    private bool ContentChunk(string text, out StreamEvent streamEvent)
    {
        StartChunk();
        _writer.WriteString("content", text);
        EndChunk(null);
        streamEvent = new StreamEvent(StreamEventKind.Chunk, Written(), ContentDelta: text);
        return true;
    }

    /// <summary>Usage in message_start (input and cache counts) and message_delta (cumulative output, sometimes all counts).</summary>
    private void NoteUsage(JsonElement holder)
    {
        if (holder.TryGetProperty("usage"u8, out var usage) && usage.ValueKind == JsonValueKind.Object)
        {
            _counts = AnthropicResponse.ReadCounts(usage, _counts);
        }
    }

    private TokenUsage Usage() => _counts.ToTokenUsage();

    /// <summary>Writes the chunk envelope up to the open <c>delta</c> object.</summary>
    private void StartChunk()
    {
        WriteEnvelope();
        _writer.WriteStartArray("choices");
        _writer.WriteStartObject();
        _writer.WriteNumber("index", 0);
        _writer.WriteStartObject("delta");
    }

    private void EndChunk(string? finishReason)
    {
        _writer.WriteEndObject();
        _writer.WriteNull("logprobs");
        if (finishReason is null)
        {
            _writer.WriteNull("finish_reason");
        }
        else
        {
            _writer.WriteString("finish_reason", finishReason);
        }
        _writer.WriteEndObject();
        _writer.WriteEndArray();
        _writer.WriteEndObject();
    }

    private ReadOnlyMemory<byte> UsageChunk()
    {
        WriteEnvelope();
        _writer.WriteStartArray("choices");
        _writer.WriteEndArray();
        _writer.WritePropertyName("usage");
        Usage().WriteOpenAIUsage(_writer);
        _writer.WriteEndObject();
        return Written();
    }

    private void WriteEnvelope()
    {
        _buffer.ResetWrittenCount();
        _writer.Reset(_buffer);
        _writer.WriteStartObject();
        _writer.WriteString("id", _id);
        _writer.WriteString("object", ChunkObject);
        _writer.WriteNumber("created", _created);
        _writer.WriteString("model", _model);
    }

    /// <summary>An <c>event: error</c> (streaming guide, "Error events") as OpenAI's envelope; the Anthropic type is the code.</summary>
    private static byte[] ErrorEnvelope(JsonElement root)
    {
        string? type = null;
        string? message = null;
        if (root.TryGetProperty("error"u8, out var error) && error.ValueKind == JsonValueKind.Object)
        {
            type = error.TryGetProperty("type"u8, out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
            message = error.TryGetProperty("message"u8, out var m) && m.ValueKind == JsonValueKind.String ? m.GetString() : null;
        }
        var envelope = new OpenAIError(502, $"Provider error ({type ?? "unknown"}): {message ?? "the stream failed"}",
            AnthropicResponse.OpenAIErrorType(type), null, type ?? "upstream_stream_error");
        return envelope.ToUtf8Bytes();
    }

    /// <summary>The chunk just written, in the stream's one buffer: valid until the next event is translated (the relay
    /// copies it to the client before reading on), so a chunk allocates nothing for its bytes.</summary>
    private ReadOnlyMemory<byte> Written()
    {
        _writer.Flush();
        return _buffer.WrittenMemory;
    }
}
