using ModelGateway.Api.StructuredOutput;
using static ModelGateway.Api.Tests.StructuredOutput.StructuredOutputKit;

namespace ModelGateway.Api.Tests.StructuredOutput;

/// <summary>
/// A corpus of schemas, each with an instance that passes and one that fails at a known pointer and keyword: objects, arrays,
/// enums, oneOf/anyOf, $ref/$defs (and draft-07 definitions), formats, nested required fields, draft-07 and 2020-12.
/// </summary>
public sealed class SchemaCorpusTests
{
    public static TheoryData<string, string, string, string, string> Corpus => new()
    {
        {
            "object with required and types",
            """{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"}},"required":["name","age"]}""",
            """{"name":"Ada","age":36}""", """{"name":"Ada","age":"36"}""", "/age|type"
        },
        {
            "missing required",
            """{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}""",
            """{"name":"x"}""", """{}""", "|required"
        },
        {
            "additionalProperties false",
            """{"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":false}""",
            """{"a":"x"}""", """{"a":"x","b":1}""", "/b|additionalProperties"
        },
        {
            "array of objects with minItems",
            """{"type":"array","minItems":1,"items":{"type":"object","properties":{"id":{"type":"integer"}},"required":["id"]}}""",
            """[{"id":1}]""", """[{"id":1},{"id":"x"}]""", "/1/id|type"
        },
        {
            "array minItems",
            """{"type":"array","minItems":2,"items":{"type":"string"}}""",
            """["a","b"]""", """["a"]""", "|minItems"
        },
        {
            "enum",
            """{"type":"object","properties":{"unit":{"enum":["celsius","fahrenheit"]}},"required":["unit"]}""",
            """{"unit":"celsius"}""", """{"unit":"kelvin"}""", "/unit|enum"
        },
        {
            "const",
            """{"const":"42"}""", "\"42\"", "\"41\"", "|const"
        },
        {
            "oneOf",
            """{"oneOf":[{"type":"string"},{"type":"integer"}]}""", "7", "true", "|oneOf/1/type"
        },
        {
            "anyOf nested",
            """{"type":"object","properties":{"v":{"anyOf":[{"type":"string","maxLength":3},{"type":"null"}]}},"required":["v"]}""",
            """{"v":null}""", """{"v":"toolong"}""", "/v|anyOf/0/maxLength"
        },
        {
            "$ref to $defs (2020-12)",
            """{"$schema":"https://json-schema.org/draft/2020-12/schema","$defs":{"point":{"type":"object","properties":{"x":{"type":"number"}},"required":["x"]}},"type":"object","properties":{"p":{"$ref":"#/$defs/point"}},"required":["p"]}""",
            """{"p":{"x":1.5}}""", """{"p":{"x":"1"}}""", "/p/x|type"
        },
        {
            "definitions (draft-07)",
            """{"$schema":"http://json-schema.org/draft-07/schema#","definitions":{"tag":{"type":"string","minLength":2}},"type":"array","items":{"$ref":"#/definitions/tag"}}""",
            """["ab","cd"]""", """["ab","c"]""", "/1|minLength"
        },
        {
            "draft-07 tuple items",
            """{"$schema":"http://json-schema.org/draft-07/schema#","type":"array","items":[{"type":"string"},{"type":"integer"}],"additionalItems":false}""",
            """["a",1]""", """["a",1,2]""", "/2|additionalItems"
        },
        {
            "2020-12 prefixItems",
            """{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"array","prefixItems":[{"type":"string"},{"type":"integer"}],"items":false}""",
            """["a",1]""", """["a","b"]""", "/1|type"
        },
        {
            "format date-time",
            """{"type":"object","properties":{"at":{"type":"string","format":"date-time"}},"required":["at"]}""",
            """{"at":"2024-01-01T00:00:00Z"}""", """{"at":"yesterday"}""", "/at|format"
        },
        {
            "format email",
            """{"type":"string","format":"email"}""", "\"a@example.com\"", "\"not-an-email\"", "|format"
        },
        {
            "nested required",
            """{"type":"object","properties":{"user":{"type":"object","properties":{"address":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}},"required":["address"]}},"required":["user"]}""",
            """{"user":{"address":{"city":"Paris"}}}""", """{"user":{"address":{}}}""", "/user/address|required"
        },
        {
            "number bounds",
            """{"type":"number","minimum":0,"exclusiveMaximum":1}""", "0.5", "1", "|exclusiveMaximum"
        },
    };

    [Theory]
    [MemberData(nameof(Corpus))]
    public void Valid_instance_passes_and_invalid_fails_at_the_pointer_and_keyword(string name, string schema, string valid, string invalid,
        string expected)
    {
        var pass = Check(schema, valid);
        Assert.True(pass.IsValid, $"{name}: {string.Join("; ", pass.Violations)}");

        var fail = Check(schema, invalid);
        Assert.False(fail.IsValid, name);
        var (pointer, keyword) = (expected.Split('|')[0], expected.Split('|')[1]);
        Assert.True(fail.Violations.Any(v => v.Pointer == pointer && v.Keyword == keyword),
            $"{name}: expected {pointer}|{keyword} in: {string.Join("; ", fail.Violations.Select(v => $"{v.Pointer}|{v.Keyword}|{v.Message}"))}");
    }

    [Fact]
    public void Error_envelope_names_each_failing_pointer_and_keyword()
    {
        var check = Check("""{"type":"object","properties":{"a":{"type":"integer"},"b":{"enum":["x"]}},"required":["a","b","c"]}""",
            """{"a":"one","b":"y"}""");

        var error = check.ToError();

        Assert.Equal(502, error.StatusCode);
        Assert.Equal("api_error", error.Type);
        Assert.Equal(StructuredOutputErrors.InvalidOutputCode, error.Code);
        Assert.Contains("/a: type:", error.Message);
        Assert.Contains("/b: enum:", error.Message);
        Assert.Contains("(root): required:", error.Message);
        Assert.StartsWith("The model's output does not match the requested JSON Schema: ", error.Message);
    }

    [Fact]
    public void The_schemas_own_dialect_decides()
    {
        // draft-07 has "dependencies"; 2020-12 replaced it with "dependentRequired". Each dialect ignores the other's keyword.
        const string draft07 = """{"$schema":"http://json-schema.org/draft-07/schema#","dependencies":{"a":["b"]},"dependentRequired":{"c":["d"]}}""";
        const string draft2020 = """{"$schema":"https://json-schema.org/draft/2020-12/schema","dependencies":{"a":["b"]},"dependentRequired":{"c":["d"]}}""";

        Assert.Equal("dependencies", Assert.Single(Check(draft07, """{"a":1}""").Violations).Keyword);
        Assert.True(Check(draft07, """{"c":1}""").IsValid);
        Assert.Equal("dependentRequired", Assert.Single(Check(draft2020, """{"c":1}""").Violations).Keyword);
        Assert.True(Check(draft2020, """{"a":1}""").IsValid);
    }

    [Fact]
    public void Json_object_mode_requires_an_object_but_no_schema()
    {
        var schema = new ResponseSchema(ResponseSchemaSource.JsonObject, "response", null, false, false);

        Assert.True(OutputValidator.Check(schema, null, """{"anything":[1,2]}""", coerce: false).IsValid);
        var array = OutputValidator.Check(schema, null, "[1]", coerce: false);
        Assert.False(array.IsValid);
        Assert.Equal("type", array.Violations.Single().Keyword);
    }
}
