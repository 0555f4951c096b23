using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;
using ModelGateway.Api.Errors;

namespace ModelGateway.Api.StructuredOutput;

/// <summary>One reason the output failed: where in the output (RFC 6901 JSON pointer, "" is the whole value), which keyword, why.</summary>
internal sealed record SchemaViolation(string Pointer, string Keyword, string Message)
{
    public override string ToString() => $"{(Pointer.Length == 0 ? "(root)" : Pointer)}: {Keyword}: {Message}";
}

/// <summary>
/// The verdict on one final output. <see cref="Content"/> is what the client should get when <see cref="IsValid"/>: the JSON
/// as found (extracted from fences or prose, and coerced) re-serialised compactly; the model's text is replaced by it.
/// </summary>
internal sealed record OutputCheck(bool IsValid, string? Content, IReadOnlyList<SchemaViolation> Violations, bool Coerced, bool Extracted = false)
{
    /// <summary>
    /// The client-facing error. The request was fine and the model's answer was not, so this is the upstream's fault: 502,
    /// type <c>api_error</c> (as for any bad upstream answer, see <c>upstream_invalid_response</c>), code
    /// <c>structured_output_invalid</c>, never a 400 that would tell the client to change its request.
    /// </summary>
    public OpenAIError ToError(string? note = null) => StructuredOutputErrors.Invalid(Violations, note);
}

/// <summary>The structured-output error envelopes.</summary>
internal static class StructuredOutputErrors
{
    public const string InvalidOutputCode = "structured_output_invalid";

    /// <summary>Error messages name at most this many violations; the rest are counted.</summary>
    private const int MaxListed = 20;

    public static OpenAIError Invalid(IReadOnlyList<SchemaViolation> violations, string? note = null)
    {
        var message = new StringBuilder("The model's output does not match the requested JSON Schema: ");
        for (var i = 0; i < violations.Count && i < MaxListed; i++)
        {
            message.Append(i == 0 ? "" : "; ").Append(violations[i]);
        }
        if (violations.Count > MaxListed)
        {
            message.Append("; and ").Append(violations.Count - MaxListed).Append(" more");
        }
        message.Append('.');
        if (note is not null)
        {
            message.Append(' ').Append(note);
        }
        return new OpenAIError(StatusCodes.Status502BadGateway, message.ToString(), "api_error", null, InvalidOutputCode);
    }
}

/// <summary>
/// Checks a final output against the client's <see cref="ResponseSchema"/>: extract the JSON (<see cref="JsonExtractor"/>),
/// coerce scalars when asked (<see cref="TypeCoercer"/>), validate with JsonSchema.Net (formats asserted, not just
/// annotated: the client asked for a date-time, so "yesterday" is a failure).
/// </summary>
internal static class OutputValidator
{
    private static readonly EvaluationOptions Evaluation = new() { OutputFormat = OutputFormat.Hierarchical, RequireFormatValidation = true };

    private static readonly JsonSerializerOptions Compact = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <param name="compiled">Null for <c>json_object</c> and schema-less <c>json_schema</c>: then only JSON-ness is checked.</param>
    /// <param name="coerce">The request's <c>coerce</c>, or a gateway/route default.</param>
    /// <param name="asSent">
    /// For streams, whose bytes already reached the client and cannot be rewritten: the text must be the JSON value itself
    /// (no fence or prose around it) and is validated without coercion, so "valid" is true of what the client received.
    /// </param>
    public static OutputCheck Check(ResponseSchema schema, CompiledSchema? compiled, string? content, bool coerce, bool asSent = false)
    {
        if (content is null || !JsonExtractor.TryExtract(content, out var value, out var extracted))
        {
            return new OutputCheck(false, null, [new SchemaViolation("", "json", content is null or { Length: 0 }
                ? "the output is empty, not JSON"
                : "the output is not valid JSON")], false);
        }
        if (asSent && extracted)
        {
            return new OutputCheck(false, null, [new SchemaViolation("", "json",
                "the streamed output is not a bare JSON value (it has a code fence or prose around it)")], false, Extracted: true);
        }
        if (schema.Source == ResponseSchemaSource.JsonObject && value is not JsonObject)
        {
            return new OutputCheck(false, null, [new SchemaViolation("", "type", "response_format json_object requires a JSON object")], false, extracted);
        }
        var coerced = false;
        if (compiled is not null && coerce && !asSent)
        {
            var before = value?.ToJsonString();
            value = TypeCoercer.Coerce(value, compiled.Source);
            coerced = before != value?.ToJsonString();
        }
        // Untouched output is returned as the model wrote it; extracted or coerced output as compact JSON.
        var text = extracted || coerced ? value is null ? "null" : value.ToJsonString(Compact) : content;
        if (compiled is null)
        {
            return new OutputCheck(true, text, [], coerced, extracted);
        }
        var violations = Validate(compiled, value is null ? "null" : value.ToJsonString(Compact));
        return new OutputCheck(violations.Count == 0, violations.Count == 0 ? text : null, violations, coerced, extracted);
    }

    /// <summary>Every failing keyword, in schema order, without repeats.</summary>
    public static IReadOnlyList<SchemaViolation> Validate(CompiledSchema compiled, string json)
    {
        using var document = JsonDocument.Parse(json);
        EvaluationResults results;
        try
        {
            results = compiled.Schema.Evaluate(document.RootElement, Evaluation);
        }
        catch (Exception ex) when (ex is RefResolutionException or JsonSchemaException)
        {
            // A remote or anchor reference the gateway does not fetch: the output cannot be checked against it.
            return [new SchemaViolation("", "$ref", ex.Message)];
        }
        if (results.IsValid)
        {
            return [];
        }
        var violations = new List<SchemaViolation>();
        var seen = new HashSet<(string, string, string)>();
        Collect(results, violations, seen);
        if (violations.Count == 0)
        {
            violations.Add(new SchemaViolation("", "schema", "the output does not match the schema"));
        }
        return violations;
    }

    /// <summary>
    /// The keyword to report: the failing keyword, or for a <c>false</c> schema (<c>additionalProperties: false</c>,
    /// <c>items: false</c>) the keyword that holds it. Inside <c>anyOf</c>/<c>oneOf</c>/<c>allOf</c>/<c>not</c> the path from
    /// the combinator on, e.g. <c>anyOf/0/maxLength</c>, so that a client sees which branch failed how.
    /// </summary>
    private static string Keyword(string schemaPath, string key)
    {
        var segments = schemaPath.Split('/', StringSplitOptions.RemoveEmptyEntries);
        if (key.Length > 0 && (segments.Length == 0 || segments[^1] != key))
        {
            segments = [.. segments, key];
        }
        for (var i = segments.Length - 1; i >= 0; i--)
        {
            if (segments[i] is "anyOf" or "oneOf" or "allOf" or "not")
            {
                return string.Join('/', segments[i..]);
            }
        }
        return segments.Length > 0 ? segments[^1] : key;
    }

    /// <summary>
    /// Walks the hierarchical output, skipping subtrees that passed: a failing branch of an <c>anyOf</c> that another branch
    /// satisfied is no reason the output failed.
    /// </summary>
    private static void Collect(EvaluationResults node, List<SchemaViolation> violations, HashSet<(string, string, string)> seen)
    {
        if (node.IsValid)
        {
            return;
        }
        if (node.Errors is { Count: > 0 } errors)
        {
            var pointer = node.InstanceLocation.ToString();
            var schemaPath = node.EvaluationPath.ToString();
            foreach (var (key, message) in errors)
            {
                var keyword = Keyword(schemaPath, key);
                if (seen.Add((pointer, keyword, message)))
                {
                    violations.Add(new SchemaViolation(pointer, keyword, message));
                }
            }
        }
        if (node.Details is { } details)
        {
            foreach (var child in details)
            {
                Collect(child, violations, seen);
            }
        }
    }
}
