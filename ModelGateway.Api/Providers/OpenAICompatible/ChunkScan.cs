using System.Text;
using System.Text.Json;

namespace ModelGateway.Api.Providers.OpenAICompatible;

/// <summary>
/// Classifies one OpenAI <c>chat.completion.chunk</c> (https://platform.openai.com/docs/api-reference/chat-streaming/streaming)
/// in one <see cref="Utf8JsonReader"/> pass, without a DOM: an error envelope, the usage-only chunk (<c>choices: []</c>) or a
/// chunk with choices, whose finish reason and produced text (content and tool-call arguments) are noted. The bytes are
/// relayed as they came. A payload that is not a JSON object throws a <see cref="JsonException"/>.
/// </summary>
internal static class ChunkScan
{
    public static StreamEvent Read(ReadOnlyMemory<byte> data)
    {
        var reader = new Utf8JsonReader(data.Span);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            throw new JsonException("A stream event is not a JSON object.");
        }
        var error = false;
        var choices = 0;
        TokenUsage? usage = null;
        string? finish = null;
        var text = new JoinedText();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("error"u8))
            {
                reader.Read();
                error |= reader.TokenType == JsonTokenType.StartObject;
                reader.Skip();
            }
            else if (reader.ValueTextEquals("usage"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.StartObject)
                {
                    usage = CompletionScan.ReadUsage(ref reader);
                }
                else
                {
                    reader.Skip();
                }
            }
            else if (reader.ValueTextEquals("choices"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartArray)
                {
                    reader.Skip();
                    continue;
                }
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    choices++;
                    ReadChoice(ref reader, ref finish, ref text);
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
        while (reader.Read())
        {
        }
        if (error)
        {
            return new StreamEvent(StreamEventKind.Error, data);
        }
        return choices == 0
            ? new StreamEvent(StreamEventKind.Usage, data, usage)
            : new StreamEvent(StreamEventKind.Chunk, data, usage, finish, text.Value);
    }

    /// <summary>One element of <c>choices</c>: the last string finish reason wins; text is the delta's content, then its tool-call arguments.</summary>
    private static void ReadChoice(ref Utf8JsonReader reader, ref string? finish, ref JoinedText text)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            reader.Skip();
            return;
        }
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("finish_reason"u8))
            {
                finish = CompletionScan.ReadString(ref reader) ?? finish;
            }
            else if (reader.ValueTextEquals("delta"u8))
            {
                reader.Read();
                ReadDelta(ref reader, ref text);
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
    }

    private static void ReadDelta(ref Utf8JsonReader reader, ref JoinedText text)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            reader.Skip();
            return;
        }
        string? content = null;
        var arguments = new JoinedText();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("content"u8))
            {
                content = CompletionScan.ReadString(ref reader);
            }
            else if (reader.ValueTextEquals("tool_calls"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartArray)
                {
                    reader.Skip();
                    continue;
                }
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    if (ReadArguments(ref reader) is { } a)
                    {
                        arguments.Add(a);
                    }
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
        // Content before arguments, whatever order the fields came in, as the text was always assembled.
        if (content is not null)
        {
            text.Add(content);
        }
        if (arguments.Value is { } joined)
        {
            text.Add(joined);
        }
    }

    /// <summary>A tool call's <c>function.arguments</c> when it is a string.</summary>
    private static string? ReadArguments(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            reader.Skip();
            return null;
        }
        string? arguments = null;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (!reader.ValueTextEquals("function"u8))
            {
                reader.Read();
                reader.Skip();
                continue;
            }
            reader.Read();
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                reader.Skip();
                continue;
            }
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("arguments"u8))
                {
                    arguments = CompletionScan.ReadString(ref reader);
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }
        }
        return arguments;
    }

    /// <summary>
    /// Text pieces joined in order. The usual chunk has one piece (one choice's content), which is kept as it is: a builder is
    /// made only for a second piece, so a plain content chunk costs its one string.
    /// </summary>
    private struct JoinedText
    {
        private string? _first;
        private StringBuilder? _more;

        public void Add(string piece)
        {
            if (_first is null)
            {
                _first = piece;
                return;
            }
            (_more ??= new StringBuilder(_first)).Append(piece);
        }

        public readonly string? Value => _more?.ToString() ?? _first;
    }
}
