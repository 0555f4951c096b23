using System.Globalization;
using System.Text.Json.Nodes;

namespace ModelGateway.Api.StructuredOutput;

/// <summary>Local schema references: <c>#</c> and JSON pointers into the same document (<c>#/$defs/x</c>, RFC 6901 escaping).</summary>
internal static class LocalRef
{
    /// <summary>The node <paramref name="reference"/> points at, or null when it is not local or points nowhere.</summary>
    public static JsonNode? Resolve(JsonObject root, string reference)
    {
        if (reference == "#")
        {
            return root;
        }
        if (!reference.StartsWith("#/", StringComparison.Ordinal))
        {
            return null;
        }
        JsonNode? node = root;
        foreach (var raw in reference[2..].Split('/'))
        {
            var segment = Uri.UnescapeDataString(raw).Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal);
            node = node switch
            {
                JsonObject o when o.ContainsKey(segment) => o[segment],
                JsonArray a when int.TryParse(segment, NumberStyles.None, CultureInfo.InvariantCulture, out var i) && i < a.Count => a[i],
                _ => null,
            };
            if (node is null)
            {
                return null;
            }
        }
        return node;
    }
}
