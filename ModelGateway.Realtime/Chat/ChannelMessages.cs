using System.Buffers;
using System.Text;
using System.Text.Json;

namespace ModelGateway.Realtime.Chat;

/// <summary>
/// The messages Realtime sends on a channel (documented in docs/realtime.md). Each carries the
/// client's request <c>id</c> (verbatim JSON: string or number) and a <c>type</c>:
/// <c>chunk</c> (one chat.completion.chunk, verbatim), <c>completion</c> (the whole chat.completion
/// with usage) or <c>error</c> (HTTP-equivalent status and OpenAI's error envelope).
/// </summary>
internal static class ChannelMessages
{
    public static string Chunk(string idJson, string chunkJson) => Wrap(idJson, "chunk", w =>
    {
        w.WritePropertyName("chunk");
        w.WriteRawValue(chunkJson, skipInputValidation: true);
    });

    public static string Completion(string idJson, string completionJson) => Wrap(idJson, "completion", w =>
    {
        w.WritePropertyName("completion");
        w.WriteRawValue(completionJson, skipInputValidation: true);
    });

    /// <summary><paramref name="envelopeJson"/> is <c>{"error":{...}}</c>; its inner object is lifted next to id and type.</summary>
    public static string Error(string idJson, int status, string envelopeJson) => Wrap(idJson, "error", w =>
    {
        w.WriteNumber("status", status);
        w.WritePropertyName("error");
        using var doc = JsonDocument.Parse(envelopeJson);
        if (doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("error", out var inner))
        {
            inner.WriteTo(w);
        }
        else
        {
            doc.RootElement.WriteTo(w);
        }
    });

    public static string Error(string idJson, int status, string message, string type, string? code, string? param = null) =>
        Error(idJson, status, ErrorEnvelope.Create(message, type, code, param));

    private static string Wrap(string idJson, string type, Action<Utf8JsonWriter> body)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WritePropertyName("id");
            w.WriteRawValue(idJson, skipInputValidation: true);
            w.WriteString("type", type);
            body(w);
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }
}
