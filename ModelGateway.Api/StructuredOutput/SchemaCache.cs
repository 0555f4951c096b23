using System.Buffers;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;
using ModelGateway.Api.Errors;

namespace ModelGateway.Api.StructuredOutput;

/// <summary>A schema built once by JsonSchema.Net, with the content hash it is cached under.</summary>
internal sealed record CompiledSchema(string Hash, JsonSchema Schema, JsonObject Source);

/// <summary>
/// Compiles each distinct response schema once. Keyed by the SHA-256 of the schema's canonical JSON (object keys sorted,
/// no whitespace), so the same schema sent with different key order or spacing is one entry. Bounded: past
/// <see cref="Capacity"/> the least recently used entry goes. Schemas that fail to compile are cached too, with their error.
/// </summary>
internal sealed class SchemaCache(int capacity = SchemaCache.DefaultCapacity)
{
    public const int DefaultCapacity = 512;

    private readonly Lock _lock = new();
    private readonly Dictionary<string, LinkedListNode<Entry>> _entries = new(StringComparer.Ordinal);
    private readonly LinkedList<Entry> _recency = new();

    public int Capacity { get; } = capacity > 0 ? capacity : throw new ArgumentOutOfRangeException(nameof(capacity));

    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _entries.Count;
            }
        }
    }

    /// <summary>How many schemas were compiled (cache misses); for tests and metrics.</summary>
    public long Compilations => Interlocked.Read(ref _compilations);

    private long _compilations;

    /// <summary>
    /// The compiled schema of <paramref name="schema"/>, or a 400 naming <paramref name="param"/> when it is not a schema
    /// JsonSchema.Net can build (unknown <c>$schema</c>, a keyword of the wrong shape, an unresolvable <c>$ref</c>).
    /// </summary>
    public CompiledSchema? GetOrCompile(JsonObject schema, string param, out OpenAIError? error)
    {
        var hash = Hash(schema);
        lock (_lock)
        {
            if (_entries.TryGetValue(hash, out var hit))
            {
                _recency.Remove(hit);
                _recency.AddFirst(hit);
                error = hit.Value.Error is { } message ? InvalidSchema(message, param) : null;
                return hit.Value.Compiled;
            }
        }

        var (compiled, failure) = Compile(hash, schema);
        Interlocked.Increment(ref _compilations);
        lock (_lock)
        {
            if (!_entries.ContainsKey(hash))
            {
                _entries[hash] = _recency.AddFirst(new Entry(hash, compiled, failure));
                while (_entries.Count > Capacity)
                {
                    var last = _recency.Last!;
                    _recency.RemoveLast();
                    _entries.Remove(last.Value.Hash);
                }
            }
        }
        error = failure is null ? null : InvalidSchema(failure, param);
        return compiled;
    }

    /// <summary>Lower-case hex SHA-256 of the canonical JSON of <paramref name="schema"/>.</summary>
    public static string Hash(JsonNode schema)
    {
        var buffer = new ArrayBufferWriter<byte>(1024);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            WriteCanonical(writer, schema);
        }
        return Convert.ToHexStringLower(SHA256.HashData(buffer.WrittenSpan));
    }

    private static void WriteCanonical(Utf8JsonWriter writer, JsonNode? node)
    {
        switch (node)
        {
            case JsonObject o:
                writer.WriteStartObject();
                var names = new string[o.Count];
                var i = 0;
                foreach (var (name, _) in o)
                {
                    names[i++] = name;
                }
                Array.Sort(names, StringComparer.Ordinal);
                foreach (var name in names)
                {
                    writer.WritePropertyName(name);
                    WriteCanonical(writer, o[name]);
                }
                writer.WriteEndObject();
                break;
            case JsonArray a:
                writer.WriteStartArray();
                foreach (var item in a)
                {
                    WriteCanonical(writer, item);
                }
                writer.WriteEndArray();
                break;
            case null:
                writer.WriteNullValue();
                break;
            default:
                node.WriteTo(writer);
                break;
        }
    }

    private static (CompiledSchema?, string?) Compile(string hash, JsonObject schema)
    {
        if (schema["$schema"] is { } dialect
            && (dialect.GetValueKind() != JsonValueKind.String || !SupportedDialects.Contains(dialect.GetValue<string>().TrimEnd('#'))))
        {
            return (null, $"'$schema' {dialect.ToJsonString()} is not supported; use draft 2020-12 "
                          + "(https://json-schema.org/draft/2020-12/schema) or draft-07 (http://json-schema.org/draft-07/schema#).");
        }
        if (FindUnresolvedRef(schema, schema, "") is { } unresolved)
        {
            return (null, unresolved);
        }
        try
        {
            using var document = JsonDocument.Parse(schema.ToJsonString());
            // A registry per schema: two clients' schemas with the same $id must not collide, and none may be fetched remotely.
            var options = new BuildOptions { SchemaRegistry = new SchemaRegistry(), Dialect = Dialect.Draft202012 };
            var built = JsonSchema.Build(document.RootElement.Clone(), options, DocumentUri);
            return (new CompiledSchema(hash, built, schema), null);
        }
        catch (Exception ex) when (ex is JsonSchemaException or RefResolutionException or JsonException or ArgumentException
                                       or FormatException or InvalidOperationException or KeyNotFoundException or UriFormatException)
        {
            return (null, ex.Message);
        }
    }

    /// <summary>
    /// A local <c>$ref</c> (<c>#/…</c>) that points nowhere. JsonSchema.Net resolves references only when evaluation reaches
    /// them, which would make a broken schema look like a broken answer; checked here so it is the client's 400.
    /// </summary>
    private static string? FindUnresolvedRef(JsonNode? node, JsonObject root, string at)
    {
        switch (node)
        {
            case JsonObject o:
                if (o["$ref"] is JsonValue r && r.GetValueKind() == JsonValueKind.String && r.GetValue<string>() is var reference
                    && reference.StartsWith("#/", StringComparison.Ordinal) && !Resolves(root, reference))
                {
                    return $"'$ref' \"{reference}\" at '{(at.Length == 0 ? "/" : at)}' does not resolve to a subschema.";
                }
                foreach (var (name, child) in o)
                {
                    if (FindUnresolvedRef(child, root, at + "/" + name.Replace("~", "~0", StringComparison.Ordinal).Replace("/", "~1", StringComparison.Ordinal)) is { } found)
                    {
                        return found;
                    }
                }
                return null;
            case JsonArray a:
                for (var i = 0; i < a.Count; i++)
                {
                    if (FindUnresolvedRef(a[i], root, at + "/" + i.ToString(System.Globalization.CultureInfo.InvariantCulture)) is { } found)
                    {
                        return found;
                    }
                }
                return null;
            default:
                return null;
        }
    }

    /// <summary>A schema is an object or a boolean.</summary>
    private static bool Resolves(JsonObject root, string reference) =>
        LocalRef.Resolve(root, reference)?.GetValueKind() is JsonValueKind.Object or JsonValueKind.True or JsonValueKind.False;

    /// <summary>The base URI of every response schema (relative <c>$id</c>s and <c>$ref</c>s resolve against it); each build has its own registry, so they never clash.</summary>
    private static readonly Uri DocumentUri = new("https://modelgateway.local/response-schema.json");

    private static readonly HashSet<string> SupportedDialects = new(StringComparer.Ordinal)
    {
        "https://json-schema.org/draft/2020-12/schema",
        "http://json-schema.org/draft-07/schema",
        "https://json-schema.org/draft-07/schema",
    };

    private static OpenAIError InvalidSchema(string reason, string param) =>
        OpenAIError.InvalidRequest($"Invalid JSON Schema in '{param}': {reason}", param, "invalid_json_schema");

    private sealed record Entry(string Hash, CompiledSchema? Compiled, string? Error);
}
