using System.Text.Json;
using System.Text.Json.Nodes;

namespace ModelGateway.Api.Providers;

/// <summary>
/// What the gateway needs from an OpenAI <c>chat.completion</c> body (https://platform.openai.com/docs/api-reference/chat/object),
/// read in one forward pass with <see cref="Utf8JsonReader"/> so the body can be relayed as it came instead of being parsed into
/// a DOM and written again. The pass also validates the whole body: a body that is not UTF-8 JSON, or not an object, throws
/// a <see cref="JsonException"/>, as parsing it did. Fields of the wrong type are treated as absent, as the DOM reads did.
/// </summary>
internal readonly struct CompletionScan
{
    /// <summary>The normalised <c>usage</c> (zero when absent).</summary>
    public TokenUsage Usage { get; init; }

    public string? Id { get; init; }

    public string? Model { get; init; }

    /// <summary>The first choice's <c>finish_reason</c>.</summary>
    public string? FinishReason { get; init; }

    /// <summary>Scans <paramref name="utf8"/>; throws <see cref="JsonException"/> when it is not a JSON object.</summary>
    public static CompletionScan Read(ReadOnlySpan<byte> utf8)
    {
        var reader = OpenAnswer(utf8);
        string? id = null, model = null, finish = null;
        TokenUsage usage = default;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("id"u8))
            {
                id = ReadString(ref reader);
            }
            else if (reader.ValueTextEquals("model"u8))
            {
                model = ReadString(ref reader);
            }
            else if (reader.ValueTextEquals("usage"u8))
            {
                reader.Read();
                usage = reader.TokenType == JsonTokenType.StartObject ? ReadUsage(ref reader) : SkipValue(ref reader, default(TokenUsage));
            }
            else if (reader.ValueTextEquals("choices"u8))
            {
                finish = ReadFirstFinishReason(ref reader);
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
        ReadToEnd(ref reader);
        return new CompletionScan { Usage = usage, Id = id, Model = model, FinishReason = finish };
    }

    /// <summary>
    /// A reader on the opening brace of a provider's answer; throws <see cref="JsonException"/> when the bytes are not UTF-8 or
    /// do not start a JSON object. The reader checks the UTF-8 only of strings it decodes, and answers reach the client as bytes.
    /// </summary>
    internal static Utf8JsonReader OpenAnswer(ReadOnlySpan<byte> utf8)
    {
        if (!System.Text.Unicode.Utf8.IsValid(utf8))
        {
            throw new JsonException("The provider's answer is not valid UTF-8.");
        }
        var reader = new Utf8JsonReader(utf8);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            throw new JsonException("The provider's answer is not a JSON object.");
        }
        return reader;
    }

    /// <summary>Reads past the answer's closing brace: anything after the object is an error the reader raises here.</summary>
    internal static void ReadToEnd(ref Utf8JsonReader reader)
    {
        while (reader.Read())
        {
        }
    }

    /// <summary>Reads the value after a property name: its text when a string, otherwise null (and the value is skipped).</summary>
    internal static string? ReadString(ref Utf8JsonReader reader)
    {
        reader.Read();
        return reader.TokenType == JsonTokenType.String ? reader.GetString() : SkipValue(ref reader, default(string));
    }

    /// <summary>Skips the value the reader is on and returns <paramref name="value"/> (for expressions).</summary>
    internal static T SkipValue<T>(ref Utf8JsonReader reader, T value)
    {
        reader.Skip();
        return value;
    }

    /// <summary>
    /// The usage object (https://platform.openai.com/docs/api-reference/chat/object#chat/object-usage), the reader on its
    /// start; leaves the reader on its end.
    /// </summary>
    internal static TokenUsage ReadUsage(ref Utf8JsonReader reader)
    {
        int prompt = 0, completion = 0, cached = 0;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("prompt_tokens"u8))
            {
                prompt = ReadInt(ref reader);
            }
            else if (reader.ValueTextEquals("completion_tokens"u8))
            {
                completion = ReadInt(ref reader);
            }
            else if (reader.ValueTextEquals("prompt_tokens_details"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartObject)
                {
                    reader.Skip();
                    continue;
                }
                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    if (reader.ValueTextEquals("cached_tokens"u8))
                    {
                        cached = ReadInt(ref reader);
                    }
                    else
                    {
                        reader.Read();
                        reader.Skip();
                    }
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
        return new TokenUsage(prompt, completion, cached);
    }

    /// <summary>An integer that fits an <see cref="int"/>; anything else counts as absent (0).</summary>
    internal static int ReadInt(ref Utf8JsonReader reader)
    {
        reader.Read();
        if (reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out var value))
        {
            return value;
        }
        reader.Skip();
        return 0;
    }

    /// <summary>The <c>choices</c> value, the reader on its property name: the first choice's finish reason when a string.</summary>
    private static string? ReadFirstFinishReason(ref Utf8JsonReader reader)
    {
        reader.Read();
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            reader.Skip();
            return null;
        }
        string? finish = null;
        var first = true;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (first && reader.TokenType == JsonTokenType.StartObject)
            {
                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    if (reader.ValueTextEquals("finish_reason"u8))
                    {
                        finish = ReadString(ref reader);
                    }
                    else
                    {
                        reader.Read();
                        reader.Skip();
                    }
                }
            }
            else
            {
                reader.Skip();
            }
            first = false;
        }
        return finish;
    }
}
