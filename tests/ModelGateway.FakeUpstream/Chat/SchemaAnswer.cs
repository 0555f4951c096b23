using System.Text.Json;
using System.Text.Json.Nodes;
using ModelGateway.FakeUpstream.Faults;

namespace ModelGateway.FakeUpstream.Chat;

/// <summary>How the fake answers a request for structured output; the magic model names of docs/fake-upstream.md.</summary>
internal enum SchemaAnswer
{
    /// <summary>The minimal valid instance of the schema, as a constrained model would.</summary>
    Valid,

    /// <summary><c>schema-invalid-json</c>: text that is not JSON at all.</summary>
    InvalidJson,

    /// <summary><c>schema-code-fence</c>: the valid instance inside prose and a <c>```json</c> fence.</summary>
    CodeFence,

    /// <summary><c>schema-wrong-types</c>: the valid instance with every number and boolean as a string.</summary>
    WrongTypes,

    /// <summary><c>schema-invalid-then-valid</c>, first call since reset: <c>{}</c> (every required property missing).</summary>
    Empty,
}

internal static class SchemaAnswers
{
    public const string InvalidJsonText = "Sure! Here is the data you asked for: {name: test,";

    /// <param name="counters">Counts calls per model, so <c>schema-invalid-then-valid</c> answers wrong only the first time.</param>
    /// <remarks>An <c>@suffix</c> is ignored but keeps its own count, so tests can use independent counters.</remarks>
    public static SchemaAnswer Of(string? model, FaultCounters counters) => (model?.Split('@')[0]) switch
    {
        "schema-invalid-json" => SchemaAnswer.InvalidJson,
        "schema-code-fence" => SchemaAnswer.CodeFence,
        "schema-wrong-types" => SchemaAnswer.WrongTypes,
        "schema-invalid-then-valid" => counters.Increment("schema:" + model) == 1 ? SchemaAnswer.Empty : SchemaAnswer.Valid,
        _ => SchemaAnswer.Valid,
    };

    /// <summary>The answer text for a JSON-constrained request (or, with a forced tool, the tool's own instance).</summary>
    public static string Text(JsonOutput json, ToolInvocation? tool, SchemaAnswer answer)
    {
        var instance = tool?.ArgumentsJson ?? Serialize(SchemaInstance.Generate(json.Schema, forceObject: json.Schema is null));
        return answer switch
        {
            SchemaAnswer.InvalidJson => InvalidJsonText,
            SchemaAnswer.CodeFence => "Here is the JSON:\n```json\n" + instance + "\n```\nLet me know if you need anything else.",
            _ => Apply(instance, answer),
        };
    }

    /// <summary>Applies the answers that keep the JSON a JSON value (wrong types, empty) to a valid instance.</summary>
    public static string Apply(string instanceJson, SchemaAnswer answer) => answer switch
    {
        SchemaAnswer.WrongTypes => Serialize(SchemaInstance.Stringify(JsonNode.Parse(instanceJson))),
        SchemaAnswer.Empty => "{}",
        _ => instanceJson,
    };

    private static readonly JsonSerializerOptions Options = new() { Encoder = JsonBody.WriterOptions.Encoder };

    private static string Serialize(JsonNode? node) => node is null ? "null" : node.ToJsonString(Options);
}
