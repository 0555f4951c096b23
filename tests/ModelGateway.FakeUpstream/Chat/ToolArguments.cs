using System.Text.Json;
using System.Text.Json.Nodes;

namespace ModelGateway.FakeUpstream.Chat;

/// <summary>
/// Builds a tool call's arguments from the tool's JSON schema, as docs/fake-upstream.md ("Tools") says: the minimal instance of
/// <see cref="SchemaInstance"/>, always an object (required properties get "test", 1, true, their enum's first value, …).
/// </summary>
internal static class ToolArguments
{
    public static string FromSchema(JsonElement? schema) =>
        SchemaInstance.Generate(schema, forceObject: true)!.ToJsonString(Options);

    private static readonly JsonSerializerOptions Options = new() { Encoder = JsonBody.WriterOptions.Encoder };
}
