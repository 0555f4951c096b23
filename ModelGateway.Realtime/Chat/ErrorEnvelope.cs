using System.Text.Json;

namespace ModelGateway.Realtime.Chat;

/// <summary>OpenAI's error envelope <c>{"error":{"message","type","param","code"}}</c>, which client SDKs parse.</summary>
internal static class ErrorEnvelope
{
    public static string Create(string message, string type, string? code, string? param = null)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            Write(w, message, type, code, param);
        }
        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }

    public static void Write(Utf8JsonWriter w, string message, string type, string? code, string? param = null)
    {
        w.WriteStartObject();
        w.WritePropertyName("error");
        w.WriteStartObject();
        w.WriteString("message", message);
        w.WriteString("type", type);
        if (param is null)
        {
            w.WriteNull("param");
        }
        else
        {
            w.WriteString("param", param);
        }
        if (code is null)
        {
            w.WriteNull("code");
        }
        else
        {
            w.WriteString("code", code);
        }
        w.WriteEndObject();
        w.WriteEndObject();
    }
}
