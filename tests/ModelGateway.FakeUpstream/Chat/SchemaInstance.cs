using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ModelGateway.FakeUpstream.Chat;

/// <summary>
/// The smallest instance of a JSON Schema the fake can think of, which is what a constrained model answers
/// (docs/fake-upstream.md, "Structured output"): <c>const</c>, else the first <c>enum</c> value, else the first
/// <c>anyOf</c>/<c>oneOf</c> branch, else by <c>type</c> (the first non-null of a union; inferred from <c>properties</c> or
/// <c>items</c> when absent): objects get their required properties, arrays <c>minItems</c> items, strings <c>"test"</c>
/// padded to <c>minLength</c> or cut to <c>maxLength</c> (or a sample of their <c>format</c>), numbers <c>1</c> moved into
/// <c>minimum</c>/<c>maximum</c>, booleans <c>true</c>. Local <c>$ref</c>s (<c>#/$defs/…</c>, <c>#/definitions/…</c>) are
/// followed; <c>pattern</c> is not honoured.
/// </summary>
internal static class SchemaInstance
{
    private const int MaxDepth = 16;

    public static JsonNode? Generate(JsonElement? schema, bool forceObject = false)
    {
        var root = schema is { ValueKind: JsonValueKind.Object } s ? JsonNode.Parse(s.GetRawText()) as JsonObject : null;
        var value = Value(root, root, 0);
        return forceObject && value is not JsonObject ? new JsonObject() : value;
    }

    /// <summary>The same instance with every number and boolean turned into a string (<c>schema-wrong-types</c>).</summary>
    public static JsonNode? Stringify(JsonNode? node)
    {
        switch (node)
        {
            case JsonObject o:
                foreach (var key in o.Select(p => p.Key).ToArray())
                {
                    var child = o[key];
                    o[key] = null;
                    o[key] = Stringify(child);
                }
                return o;
            case JsonArray a:
                for (var i = 0; i < a.Count; i++)
                {
                    var child = a[i];
                    a[i] = null;
                    a[i] = Stringify(child);
                }
                return a;
            case JsonValue v when v.GetValueKind() is JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False:
                return JsonValue.Create(v.ToJsonString());
            default:
                return node;
        }
    }

    private static JsonNode? Value(JsonObject? schema, JsonObject? root, int depth)
    {
        if (schema is null || depth > MaxDepth)
        {
            return JsonValue.Create("test");
        }
        if (schema["$ref"] is JsonValue r && r.GetValueKind() == JsonValueKind.String && Resolve(root, r.GetValue<string>()) is { } target)
        {
            return Value(target, root, depth + 1);
        }
        if (schema.ContainsKey("const"))
        {
            return schema["const"]?.DeepClone();
        }
        if (schema["enum"] is JsonArray { Count: > 0 } values)
        {
            return values[0]?.DeepClone();
        }
        foreach (var name in (ReadOnlySpan<string>)["anyOf", "oneOf"])
        {
            if (schema[name] is JsonArray { Count: > 0 } branches && branches[0] is JsonObject first)
            {
                return Value(first, root, depth + 1);
            }
        }
        if (schema["type"] is null && schema["allOf"] is JsonArray { Count: > 0 } all && all[0] is JsonObject only)
        {
            return Value(only, root, depth + 1);
        }
        switch (TypeOf(schema))
        {
            case "object":
                var result = new JsonObject();
                var properties = schema["properties"] as JsonObject;
                if (schema["required"] is JsonArray required)
                {
                    foreach (var name in required)
                    {
                        if (name is JsonValue n && n.GetValueKind() == JsonValueKind.String)
                        {
                            result[n.GetValue<string>()] = Value(properties?[n.GetValue<string>()] as JsonObject, root, depth + 1);
                        }
                    }
                }
                return result;
            case "array":
                var array = new JsonArray();
                var count = schema["minItems"] is JsonValue min && min.TryGetValue<int>(out var m) ? Math.Min(m, 100) : 0;
                var prefix = schema["prefixItems"] as JsonArray ?? schema["items"] as JsonArray;
                for (var i = 0; i < count; i++)
                {
                    var item = prefix is not null && i < prefix.Count ? prefix[i] as JsonObject : schema["items"] as JsonObject;
                    array.Add(Value(item, root, depth + 1));
                }
                return array;
            case "number":
            case "integer":
                return JsonValue.Create(Number(schema, TypeOf(schema) == "integer"));
            case "boolean":
                return JsonValue.Create(true);
            case "null":
                return null;
            default:
                return JsonValue.Create(String(schema));
        }
    }

    private static string String(JsonObject schema)
    {
        var format = schema["format"] is JsonValue f && f.GetValueKind() == JsonValueKind.String ? f.GetValue<string>() : null;
        var text = format switch
        {
            "date-time" => "2024-01-01T00:00:00Z",
            "date" => "2024-01-01",
            "time" => "00:00:00Z",
            "email" => "test@example.com",
            "uri" or "url" or "iri" => "https://example.com/",
            "uuid" => "00000000-0000-4000-8000-000000000000",
            "ipv4" => "127.0.0.1",
            "ipv6" => "::1",
            "hostname" => "example.com",
            _ => "test",
        };
        if (format is null && schema["minLength"] is JsonValue ml && ml.TryGetValue<int>(out var minLength) && minLength > text.Length)
        {
            text = text.PadRight(Math.Min(minLength, 10_000), 't');
        }
        if (format is null && schema["maxLength"] is JsonValue xl && xl.TryGetValue<int>(out var maxLength) && maxLength >= 0 && maxLength < text.Length)
        {
            text = text[..maxLength];
        }
        return text;
    }

    private static decimal Number(JsonObject schema, bool integer)
    {
        decimal value = 1;
        if (Decimal(schema, "minimum") is { } min && value < min)
        {
            value = integer ? Math.Ceiling(min) : min;
        }
        if (Decimal(schema, "exclusiveMinimum") is { } xmin && value <= xmin)
        {
            value = Math.Floor(xmin) + 1;
        }
        if (Decimal(schema, "maximum") is { } max && value > max)
        {
            value = integer ? Math.Floor(max) : max;
        }
        if (Decimal(schema, "exclusiveMaximum") is { } xmax && value >= xmax)
        {
            value = Math.Ceiling(xmax) - 1;
        }
        return value;
    }

    private static decimal? Decimal(JsonObject schema, string name) =>
        schema[name] is JsonValue v && v.GetValueKind() == JsonValueKind.Number
        && decimal.TryParse(v.ToJsonString(), NumberStyles.Float, CultureInfo.InvariantCulture, out var d) ? d : null;

    private static JsonObject? Resolve(JsonObject? root, string reference)
    {
        if (root is null || !reference.StartsWith('#'))
        {
            return null;
        }
        JsonNode? node = root;
        foreach (var segment in reference.Length <= 2 ? [] : reference[2..].Split('/'))
        {
            node = node is JsonObject o ? o[segment.Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal)] : null;
        }
        return node as JsonObject;
    }

    /// <summary>The schema's type; for a union such as ["string","null"] the first non-null one; inferred when absent.</summary>
    private static string? TypeOf(JsonObject schema)
    {
        switch (schema["type"])
        {
            case JsonValue t when t.GetValueKind() == JsonValueKind.String:
                return t.GetValue<string>();
            case JsonArray types:
                string? first = null;
                foreach (var t in types)
                {
                    if (t is JsonValue tv && tv.GetValueKind() == JsonValueKind.String)
                    {
                        first ??= tv.GetValue<string>();
                        if (tv.GetValue<string>() != "null")
                        {
                            return tv.GetValue<string>();
                        }
                    }
                }
                return first;
        }
        return schema.ContainsKey("properties") || schema.ContainsKey("required") ? "object"
            : schema.ContainsKey("items") || schema.ContainsKey("prefixItems") ? "array"
            : null;
    }
}
