using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ModelGateway.Api.StructuredOutput;

/// <summary>
/// Ajv's <c>coerceTypes: true</c> (https://ajv.js.org/coercion.html) applied before validation: a scalar whose type the schema
/// does not allow becomes one it does when the conversion is lossless. string → number/integer ("42", "1.5"), boolean
/// ("true"/"false"), null (""); number → string, boolean (1/0), null (0); boolean → string, number (1/0), null (false);
/// null → string (""), number (0), boolean (false). Target types are tried in Ajv's order: string, number, integer, boolean,
/// null. Walks <c>properties</c>, <c>additionalProperties</c>, <c>items</c>/<c>prefixItems</c>, local <c>$ref</c>s,
/// <c>allOf</c>, and for <c>anyOf</c>/<c>oneOf</c> the first branch whose type fits the value, or else the first branch it
/// can be coerced to.
/// </summary>
internal static class TypeCoercer
{
    private const int MaxDepth = 32;
    private static readonly string[] Order = ["string", "number", "integer", "boolean", "null"];

    /// <summary>Coerces <paramref name="value"/> in place where it can; returns the (possibly replaced) root value.</summary>
    public static JsonNode? Coerce(JsonNode? value, JsonObject schema) => Coerce(value, schema, schema, 0);

    private static JsonNode? Coerce(JsonNode? value, JsonObject schema, JsonObject root, int depth)
    {
        if (depth > MaxDepth)
        {
            return value;
        }
        if (schema["$ref"] is JsonValue r && r.GetValueKind() == JsonValueKind.String && Resolve(root, r.GetValue<string>()) is { } target)
        {
            value = Coerce(value, target, root, depth + 1);
        }
        foreach (var name in (ReadOnlySpan<string>)["allOf"])
        {
            if (schema[name] is JsonArray all)
            {
                foreach (var branch in all)
                {
                    if (branch is JsonObject b)
                    {
                        value = Coerce(value, b, root, depth + 1);
                    }
                }
            }
        }
        foreach (var name in (ReadOnlySpan<string>)["anyOf", "oneOf"])
        {
            if (schema[name] is JsonArray branches)
            {
                value = CoerceToBranch(value, branches, root, depth);
            }
        }

        value = CoerceScalar(value, Types(schema));

        switch (value)
        {
            case JsonObject o:
                var properties = schema["properties"] as JsonObject;
                foreach (var key in o.Select(p => p.Key).ToArray())
                {
                    var sub = properties?[key] as JsonObject ?? schema["additionalProperties"] as JsonObject;
                    if (sub is not null)
                    {
                        o[key] = Coerce(Detach(o, key), sub, root, depth + 1);
                    }
                }
                break;
            case JsonArray a:
                var prefix = schema["prefixItems"] as JsonArray ?? schema["items"] as JsonArray;
                var rest = schema["items"] as JsonObject ?? schema["additionalItems"] as JsonObject;
                for (var i = 0; i < a.Count; i++)
                {
                    var sub = prefix is not null && i < prefix.Count ? prefix[i] as JsonObject : rest;
                    if (sub is not null)
                    {
                        var item = a[i];
                        a[i] = null;
                        a[i] = Coerce(item?.Parent is null ? item : item.DeepClone(), sub, root, depth + 1);
                    }
                }
                break;
        }
        return value;
    }

    private static JsonNode? Detach(JsonObject o, string key)
    {
        var node = o[key];
        o[key] = null;
        return node;
    }

    private static JsonNode? CoerceToBranch(JsonNode? value, JsonArray branches, JsonObject root, int depth)
    {
        var kind = KindOf(value);
        foreach (var branch in branches)
        {
            if (branch is JsonObject b && Fits(kind, Types(Deref(b, root))))
            {
                return Coerce(value, Deref(b, root), root, depth + 1);
            }
        }
        foreach (var branch in branches)
        {
            if (branch is JsonObject b && CoerceScalar(value?.DeepClone(), Types(Deref(b, root))) is var coerced
                && Fits(KindOf(coerced), Types(Deref(b, root))))
            {
                return Coerce(coerced, Deref(b, root), root, depth + 1);
            }
        }
        return value;
    }

    private static JsonObject Deref(JsonObject schema, JsonObject root) =>
        schema["$ref"] is JsonValue r && r.GetValueKind() == JsonValueKind.String && Resolve(root, r.GetValue<string>()) is { } t ? t : schema;

    private static bool Fits(string kind, IReadOnlyList<string>? types) =>
        types is null || types.Contains(kind) || (kind == "integer" && types.Contains("number"));

    private static JsonObject? Resolve(JsonObject root, string reference) => LocalRef.Resolve(root, reference) as JsonObject;

    /// <summary>The schema's <c>type</c> as a list (a string or an array of strings); null when it names none.</summary>
    private static List<string>? Types(JsonObject schema)
    {
        switch (schema["type"])
        {
            case JsonValue v when v.GetValueKind() == JsonValueKind.String:
                return [v.GetValue<string>()];
            case JsonArray a:
                var list = new List<string>(a.Count);
                foreach (var t in a)
                {
                    if (t is JsonValue tv && tv.GetValueKind() == JsonValueKind.String)
                    {
                        list.Add(tv.GetValue<string>());
                    }
                }
                return list;
            default:
                return null;
        }
    }

    /// <summary>The JSON type of a value; whole numbers are "integer" (which also satisfies "number").</summary>
    private static string KindOf(JsonNode? value) => value?.GetValueKind() switch
    {
        null or JsonValueKind.Null => "null",
        JsonValueKind.String => "string",
        JsonValueKind.True or JsonValueKind.False => "boolean",
        JsonValueKind.Number => IsWhole(value) ? "integer" : "number",
        JsonValueKind.Array => "array",
        _ => "object",
    };

    private static bool IsWhole(JsonNode value) =>
        double.TryParse(value.ToJsonString(), NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && Math.Floor(d) == d && double.IsFinite(d);

    private static JsonNode? CoerceScalar(JsonNode? value, IReadOnlyList<string>? types)
    {
        if (types is null || types.Count == 0)
        {
            return value;
        }
        var kind = KindOf(value);
        if (kind is "array" or "object" || Fits(kind, types))
        {
            return value;
        }
        foreach (var target in Order)
        {
            if (types.Contains(target) && TryConvert(value, kind, target, out var converted))
            {
                return converted;
            }
        }
        return value;
    }

    private static bool TryConvert(JsonNode? value, string kind, string target, out JsonNode? converted)
    {
        converted = null;
        switch (target, kind)
        {
            case ("string", "number" or "integer"):
                converted = JsonValue.Create(value!.ToJsonString());
                return true;
            case ("string", "boolean"):
                converted = JsonValue.Create(value!.GetValue<bool>() ? "true" : "false");
                return true;
            case ("string", "null"):
                converted = JsonValue.Create("");
                return true;
            case ("number" or "integer", "string"):
                var text = value!.GetValue<string>().Trim();
                if (text.Length > 0 && decimal.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var number)
                    && (target == "number" || decimal.Truncate(number) == number))
                {
                    converted = JsonNode.Parse(number.ToString(CultureInfo.InvariantCulture));
                    return true;
                }
                return false;
            case ("number" or "integer", "boolean"):
                converted = JsonValue.Create(value!.GetValue<bool>() ? 1 : 0);
                return true;
            case ("number" or "integer", "null"):
                converted = JsonValue.Create(0);
                return true;
            case ("boolean", "string"):
                switch (value!.GetValue<string>())
                {
                    case "true":
                        converted = JsonValue.Create(true);
                        return true;
                    case "false":
                        converted = JsonValue.Create(false);
                        return true;
                }
                return false;
            case ("boolean", "number" or "integer"):
                var raw = value!.ToJsonString();
                if (raw is "1" or "0")
                {
                    converted = JsonValue.Create(raw == "1");
                    return true;
                }
                return false;
            case ("boolean", "null"):
                converted = JsonValue.Create(false);
                return true;
            case ("null", "string"):
                return value!.GetValue<string>().Length == 0;
            case ("null", "number" or "integer"):
                return value!.ToJsonString() == "0";
            case ("null", "boolean"):
                return !value!.GetValue<bool>();
            default:
                return false;
        }
    }
}
