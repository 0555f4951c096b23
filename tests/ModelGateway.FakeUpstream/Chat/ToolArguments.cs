using System.Buffers;
using System.Text;
using System.Text.Json;

namespace ModelGateway.FakeUpstream.Chat;

/// <summary>
/// Builds a tool call's arguments from the tool's JSON schema, as docs/fake-upstream.md ("Tools")
/// says: each required property gets "test" (string), 1 (number/integer), true (boolean).
/// Nested objects follow the same rule; arrays are empty; an untyped property gets "test".
/// </summary>
internal static class ToolArguments
{
    private const int MaxDepth = 16;

    public static string FromSchema(JsonElement? schema)
    {
        var buffer = new ArrayBufferWriter<byte>(128);
        using (var json = new Utf8JsonWriter(buffer, JsonBody.WriterOptions))
        {
            WriteObject(json, schema, 0);
        }
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private static void WriteObject(Utf8JsonWriter json, JsonElement? schema, int depth)
    {
        json.WriteStartObject();
        if (schema is { ValueKind: JsonValueKind.Object } s
            && depth < MaxDepth
            && s.TryGetProperty("required", out var required)
            && required.ValueKind == JsonValueKind.Array)
        {
            s.TryGetProperty("properties", out var properties);
            foreach (var name in required.EnumerateArray())
            {
                if (name.ValueKind != JsonValueKind.String)
                {
                    continue;
                }
                var propertyName = name.GetString()!;
                json.WritePropertyName(propertyName);
                JsonElement? propertySchema = properties.ValueKind == JsonValueKind.Object
                    && properties.TryGetProperty(propertyName, out var p) ? p : null;
                WriteValue(json, propertySchema, depth + 1);
            }
        }
        json.WriteEndObject();
    }

    private static void WriteValue(Utf8JsonWriter json, JsonElement? schema, int depth)
    {
        switch (TypeOf(schema))
        {
            case "number":
            case "integer":
                json.WriteNumberValue(1);
                break;
            case "boolean":
                json.WriteBooleanValue(true);
                break;
            case "object":
                WriteObject(json, schema, depth);
                break;
            case "array":
                json.WriteStartArray();
                json.WriteEndArray();
                break;
            case "null":
                json.WriteNullValue();
                break;
            default:
                json.WriteStringValue("test");
                break;
        }
    }

    /// <summary>The schema's type; for a union such as ["string","null"] the first non-null one.</summary>
    private static string? TypeOf(JsonElement? schema)
    {
        if (schema is not { ValueKind: JsonValueKind.Object } s || !s.TryGetProperty("type", out var type))
        {
            return null;
        }
        if (type.ValueKind == JsonValueKind.String)
        {
            return type.GetString();
        }
        if (type.ValueKind == JsonValueKind.Array)
        {
            string? first = null;
            foreach (var t in type.EnumerateArray())
            {
                if (t.ValueKind == JsonValueKind.String)
                {
                    first ??= t.GetString();
                    if (t.GetString() != "null")
                    {
                        return t.GetString();
                    }
                }
            }
            return first;
        }
        return null;
    }
}
