using System.Text.Json.Nodes;
using ModelGateway.Api.StructuredOutput;
using static ModelGateway.Api.Tests.StructuredOutput.StructuredOutputKit;

namespace ModelGateway.Api.Tests.StructuredOutput;

public sealed class ExtractionAndCoercionTests
{
    [Theory]
    [InlineData("""{"a":1}""", """{"a":1}""")]
    [InlineData("  [1,2]\n", "[1,2]")]
    [InlineData("```json\n{\"a\":1}\n```", """{"a":1}""")]
    [InlineData("Here you go:\n```JSON\n{\"a\":\"}\"}\n```\nAnything else?", """{"a":"}"}""")]
    [InlineData("```\n[true]\n```", "[true]")]
    [InlineData("The answer is {\"a\":{\"b\":[1,2]}} as requested.", """{"a":{"b":[1,2]}}""")]
    [InlineData("Braces {like these} first, then {\"a\":1}.", """{"a":1}""")]
    [InlineData("A string with a brace: {\"s\":\"a } b\",\"t\":\"\\\"{\"}", """{"s":"a } b","t":"\"{"}""")]
    [InlineData("\"just a string\"", "\"just a string\"")]
    public void Extracts_json_from_output(string output, string expected)
    {
        Assert.True(JsonExtractor.TryExtract(output, out var json));
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(expected), json), json?.ToJsonString());
    }

    [Theory]
    [InlineData("")]
    [InlineData("no json here")]
    [InlineData("{name: test,")]
    [InlineData("```json\n{broken\n```")]
    public void Reports_no_json(string output) => Assert.False(JsonExtractor.TryExtract(output, out _));

    [Fact]
    public void Prose_full_of_unbalanced_brackets_is_given_up_on_quickly()
    {
        var text = new string('[', 2_000_000) + " not json";
        var watch = System.Diagnostics.Stopwatch.StartNew();

        Assert.False(JsonExtractor.TryExtract(text, out _));
        // Not a speed test (those are benchmarks): a bound far above a loaded CI machine's worst (~5 s seen) that an
        // unbounded candidate search over 2 million openings (minutes) still cannot meet.
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), $"took {watch.Elapsed}");
    }

    [Fact]
    public void Invalid_json_is_a_json_violation_at_the_root()
    {
        var check = Check("""{"type":"object"}""", "Sure! {name: test,");

        Assert.False(check.IsValid);
        Assert.Equal(new SchemaViolation("", "json", "the output is not valid JSON"), check.Violations.Single());
    }

    [Fact]
    public void Fenced_valid_output_is_returned_as_clean_json()
    {
        var check = Check("""{"type":"object","properties":{"a":{"type":"integer"}}}""", "```json\n{ \"a\": 1 }\n```");

        Assert.True(check.IsValid);
        Assert.Equal("""{"a":1}""", check.Content);
    }

    public static TheoryData<string, string, string> Coercions => new()
    {
        { """{"type":"integer"}""", "\"42\"", "42" },
        { """{"type":"number"}""", "\"1.5\"", "1.5" },
        { """{"type":"number"}""", "true", "1" },
        { """{"type":"boolean"}""", "\"true\"", "true" },
        { """{"type":"boolean"}""", "0", "false" },
        { """{"type":"string"}""", "12", "\"12\"" },
        { """{"type":"string"}""", "false", "\"false\"" },
        { """{"type":"string"}""", "null", "\"\"" },
        { """{"type":"null"}""", "\"\"", "null" },
        { """{"type":["integer","null"]}""", "\"7\"", "7" },
        {
            """{"type":"object","properties":{"n":{"type":"integer"},"ok":{"type":"boolean"},"tags":{"type":"array","items":{"type":"number"}}}}""",
            """{"n":"3","ok":"false","tags":["1","2.5"]}""", """{"n":3,"ok":false,"tags":[1,2.5]}"""
        },
        {
            """{"$defs":{"n":{"type":"integer"}},"type":"object","properties":{"x":{"$ref":"#/$defs/n"}}}""",
            """{"x":"5"}""", """{"x":5}"""
        },
        { """{"anyOf":[{"type":"boolean"},{"type":"integer"}]}""", "\"9\"", "9" },
        { """{"oneOf":[{"type":"string"},{"type":"integer"}]}""", "\"9\"", "\"9\"" },
        { """{"type":"object","additionalProperties":{"type":"integer"}}""", """{"a":"1","b":"2"}""", """{"a":1,"b":2}""" },
    };

    [Theory]
    [MemberData(nameof(Coercions))]
    public void Coerces_like_ajv(string schema, string output, string expected)
    {
        var check = Check(schema, output, coerce: true);

        Assert.True(check.IsValid, string.Join("; ", check.Violations));
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(expected), JsonNode.Parse(check.Content!)), check.Content);
    }

    [Theory]
    [InlineData("""{"type":"integer"}""", "\"4.5\"")]
    [InlineData("""{"type":"integer"}""", "\"abc\"")]
    [InlineData("""{"type":"boolean"}""", "\"yes\"")]
    [InlineData("""{"type":"boolean"}""", "2")]
    [InlineData("""{"type":"null"}""", "\"x\"")]
    public void Does_not_coerce_lossy_values(string schema, string output)
    {
        var check = Check(schema, output, coerce: true);

        Assert.False(check.IsValid);
        Assert.Equal("type", check.Violations[0].Keyword);
    }

    [Fact]
    public void Without_coerce_wrong_types_fail()
    {
        var check = Check("""{"type":"object","properties":{"n":{"type":"integer"}}}""", """{"n":"3"}""", coerce: false);

        Assert.False(check.IsValid);
        Assert.Equal(("/n", "type"), (check.Violations[0].Pointer, check.Violations[0].Keyword));
    }
}
