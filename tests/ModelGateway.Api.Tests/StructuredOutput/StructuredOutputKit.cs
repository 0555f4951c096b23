using System.Text.Json.Nodes;
using ModelGateway.Api.StructuredOutput;

namespace ModelGateway.Api.Tests.StructuredOutput;

internal static class StructuredOutputKit
{
    public static CompiledSchema Compile(string schema, SchemaCache? cache = null)
    {
        var compiled = (cache ?? new SchemaCache()).GetOrCompile((JsonObject)JsonNode.Parse(schema)!, "response_format", out var error);
        Assert.True(compiled is not null, error?.Message);
        return compiled!;
    }

    public static ResponseSchema Extension(string schema, bool coerce = false) =>
        new(ResponseSchemaSource.Extension, ResponseSchema.DefaultName, (JsonObject)JsonNode.Parse(schema)!, false, coerce);

    public static OutputCheck Check(string schema, string output, bool coerce = false) =>
        OutputValidator.Check(Extension(schema, coerce), Compile(schema), output, coerce);
}
