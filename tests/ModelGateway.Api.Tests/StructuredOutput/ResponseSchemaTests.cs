using System.Text.Json.Nodes;
using ModelGateway.Api.StructuredOutput;
using static ModelGateway.Api.Tests.Providers.ProviderTestKit;

namespace ModelGateway.Api.Tests.StructuredOutput;

public sealed class ResponseSchemaTests
{
    private const string Messages = """ "messages":[{"role":"user","content":"hi"}] """;

    private static (ResponseSchema? Schema, Api.Errors.OpenAIError? Error) Read(string fields)
    {
        var ok = ResponseSchema.TryRead(Request($$"""{"model":"m",{{Messages}},{{fields}}}"""), out var schema, out var error);
        Assert.Equal(ok, error is null);
        return (schema, error);
    }

    [Fact]
    public void Reads_response_format_json_schema()
    {
        var (schema, _) = Read("""
            "response_format":{"type":"json_schema","json_schema":{"name":"person","strict":true,"schema":{"type":"object"}}}
            """);

        Assert.Equal(ResponseSchemaSource.JsonSchema, schema!.Source);
        Assert.Equal("person", schema.Name);
        Assert.True(schema.Strict);
        Assert.False(schema.Coerce);
        Assert.Equal("response_format", schema.Param);
        Assert.Equal("object", schema.Schema!["type"]!.GetValue<string>());
    }

    [Fact]
    public void Reads_json_object_and_the_extension_with_coerce()
    {
        Assert.Equal(ResponseSchemaSource.JsonObject, Read("""  "response_format":{"type":"json_object"} """).Schema!.Source);
        Assert.Null(Read("""  "response_format":{"type":"text"} """).Schema);
        Assert.Null(Read(""" "temperature":1 """).Schema);

        var (extension, _) = Read(""" "response_schema":{"type":"array"},"coerce":true """);
        Assert.Equal(ResponseSchemaSource.Extension, extension!.Source);
        Assert.True(extension.Coerce);
        Assert.Equal("response_schema", extension.Param);
    }

    [Theory]
    [InlineData(""" "coerce":"yes" """, "coerce", "'coerce' must be a boolean.")]
    [InlineData(""" "response_schema":[1] """, "response_schema", "'response_schema' must be a JSON Schema object.")]
    [InlineData(""" "response_schema":{},"response_format":{"type":"json_object"} """, "response_schema",
        "Give either 'response_format' of type 'json_object' or 'response_schema', not both.")]
    [InlineData(""" "response_format":{"type":"json_schema"} """, "response_format.json_schema",
        "'response_format.json_schema' must be an object with 'name' and 'schema' when 'response_format.type' is 'json_schema'.")]
    [InlineData(""" "response_format":{"type":"json_schema","json_schema":{"schema":{}}} """, "response_format.json_schema.name",
        "Missing required parameter: 'response_format.json_schema.name'.")]
    [InlineData(""" "response_format":{"type":"json_schema","json_schema":{"name":"a b","schema":{}}} """, "response_format.json_schema.name",
        "Invalid 'response_format.json_schema.name': 'a b'. Use 1 to 64 characters a-z, A-Z, 0-9, '_' or '-'.")]
    [InlineData(""" "response_format":{"type":"json_schema","json_schema":{"name":"a","schema":true}} """, "response_format.json_schema.schema",
        "'response_format.json_schema.schema' must be a JSON Schema object.")]
    public void Malformed_fields_are_400s_naming_the_param(string fields, string param, string message)
    {
        var (_, error) = Read(fields);

        Assert.Equal(400, error!.StatusCode);
        Assert.Equal("invalid_request_error", error.Type);
        Assert.Equal(param, error.Param);
        Assert.Equal(message, error.Message);
    }

    [Theory]
    [InlineData("""{"type":"object","properties":{"a":{"type":12}}}""")]
    [InlineData("""{"type":"object","properties":{"a":{"$ref":"#/$defs/missing"}}}""")]
    [InlineData("""{"$schema":"http://json-schema.org/draft-04/schema#","type":"object"}""")]
    [InlineData("""{"type":"object","required":"a"}""")]
    [InlineData("""{"minLength":-1}""")]
    public void Invalid_schema_is_a_400_with_a_precise_message(string schema)
    {
        var compiled = new SchemaCache().GetOrCompile((JsonObject)JsonNode.Parse(schema)!, "response_schema", out var error);

        Assert.Null(compiled);
        Assert.Equal(400, error!.StatusCode);
        Assert.Equal("invalid_request_error", error.Type);
        Assert.Equal("response_schema", error.Param);
        Assert.Equal("invalid_json_schema", error.Code);
        Assert.StartsWith("Invalid JSON Schema in 'response_schema': ", error.Message);
        Assert.True(error.Message.Length > "Invalid JSON Schema in 'response_schema': ".Length + 5, error.Message);
    }

    [Fact]
    public void Unresolved_ref_message_names_the_ref_and_where_it_is()
    {
        new SchemaCache().GetOrCompile((JsonObject)JsonNode.Parse("""{"type":"object","properties":{"a":{"$ref":"#/$defs/missing"}}}""")!,
            "response_format", out var error);

        Assert.Equal("""Invalid JSON Schema in 'response_format': '$ref' "#/$defs/missing" at '/properties/a' does not resolve to a subschema.""",
            error!.Message);
    }

    [Fact]
    public void Unsupported_dialect_message_names_the_supported_ones()
    {
        new SchemaCache().GetOrCompile((JsonObject)JsonNode.Parse("""{"$schema":"http://json-schema.org/draft-04/schema#"}""")!,
            "response_format", out var error);

        Assert.Equal("""Invalid JSON Schema in 'response_format': '$schema' "http://json-schema.org/draft-04/schema#" is not supported; """
                     + "use draft 2020-12 (https://json-schema.org/draft/2020-12/schema) or draft-07 (http://json-schema.org/draft-07/schema#).",
            error!.Message);
    }

    [Fact]
    public void Cache_compiles_each_distinct_schema_once_whatever_its_key_order()
    {
        var cache = new SchemaCache();
        var a = cache.GetOrCompile((JsonObject)JsonNode.Parse("""{"type":"object","required":["x"]}""")!, "response_format", out _);
        var b = cache.GetOrCompile((JsonObject)JsonNode.Parse("""{ "required": ["x"], "type": "object" }""")!, "response_format", out _);
        cache.GetOrCompile((JsonObject)JsonNode.Parse("""{"type":"array"}""")!, "response_format", out _);

        Assert.Same(a, b);
        Assert.Equal(2, cache.Compilations);
        Assert.Equal(2, cache.Count);
        Assert.Equal(64, a!.Hash.Length);
    }

    [Fact]
    public void Cache_is_bounded_and_evicts_the_least_recently_used()
    {
        var cache = new SchemaCache(capacity: 2);
        JsonObject Schema(int n) => new() { ["maxLength"] = n };

        var first = cache.GetOrCompile(Schema(1), "p", out _);
        cache.GetOrCompile(Schema(2), "p", out _);
        Assert.Same(first, cache.GetOrCompile(Schema(1), "p", out _)); // 1 is now the most recent
        cache.GetOrCompile(Schema(3), "p", out _);                       // evicts 2

        Assert.Equal(2, cache.Count);
        Assert.Same(first, cache.GetOrCompile(Schema(1), "p", out _));
        Assert.Equal(3, cache.Compilations);
        cache.GetOrCompile(Schema(2), "p", out _);
        Assert.Equal(4, cache.Compilations);
    }

    [Fact]
    public void Invalid_schemas_are_cached_with_their_error()
    {
        var cache = new SchemaCache();
        var schema = (JsonObject)JsonNode.Parse("""{"type":12}""")!;

        cache.GetOrCompile(schema, "response_schema", out var first);
        cache.GetOrCompile(schema, "response_format", out var second);

        Assert.Equal(1, cache.Compilations);
        Assert.Equal("response_format", second!.Param);
        Assert.Equal(first!.Message.Replace("response_schema", "response_format", StringComparison.Ordinal), second.Message);
    }

    [Fact]
    public void Repair_request_replays_the_conversation_with_the_errors()
    {
        var original = Request("""
            {"model":"m","stream":true,"max_tokens":50,"response_schema":{"type":"object"},"messages":[{"role":"user","content":"Give me a person"}]}
            """);
        var violations = new[] { new SchemaViolation("/age", "type", "Value is \"string\" but should be \"integer\"") };

        var repair = RepairPrompt.BuildRequest(original, """{"age":"x"}""", violations);

        Assert.False(repair.Stream);
        Assert.Equal(50, repair.MaxTokens);
        Assert.Equal(3, repair.Messages.Count);
        Assert.Equal("Give me a person", repair.Messages[0]!["content"]!.GetValue<string>());
        Assert.Equal("assistant", repair.Messages[1]!["role"]!.GetValue<string>());
        Assert.Equal("""{"age":"x"}""", repair.Messages[1]!["content"]!.GetValue<string>());
        Assert.Equal("user", repair.Messages[2]!["role"]!.GetValue<string>());
        Assert.Equal("Your previous reply does not match the required JSON Schema:\n- /age: type: Value is \"string\" but should be \"integer\"\n"
                     + "Reply again with only the corrected JSON value, with no explanation and no code fence.",
            repair.Messages[2]!["content"]!.GetValue<string>());
        Assert.NotNull(repair.Body["response_schema"]);
        Assert.Single(original.Messages);
    }
}
