using System.Text.Json.Nodes;
using ModelGateway.Api.Providers;
using ModelGateway.Api.Providers.Anthropic;
using ModelGateway.Api.Providers.LlamaCpp;
using ModelGateway.Api.Providers.OpenAICompatible;
using ModelGateway.Api.StructuredOutput;
using ModelGateway.Api.Tests.FakeUpstream;
using ModelGateway.Api.Tokenization;
using static ModelGateway.Api.Tests.Providers.ProviderTestKit;

namespace ModelGateway.Api.Tests.StructuredOutput;

/// <summary>
/// Each adapter against the fake upstream, which honours each provider's constraint (docs/fake-upstream.md, "Structured
/// output"): its answers validate, and its schema-* model names produce the failures the gateway must catch, fix or report.
/// </summary>
public sealed class FakeUpstreamSchemaTests(FakeUpstreamApp fake) : IClassFixture<FakeUpstreamApp>
{
    private const string Rich = """
        {"$schema":"https://json-schema.org/draft/2020-12/schema",
         "$defs":{"tag":{"type":"string","enum":["red","green"]}},
         "type":"object",
         "properties":{
           "name":{"type":"string","minLength":6},
           "age":{"type":"integer","minimum":18},
           "score":{"type":"number","exclusiveMaximum":1},
           "active":{"type":"boolean"},
           "email":{"type":"string","format":"email"},
           "born":{"type":"string","format":"date"},
           "kind":{"const":"person"},
           "tags":{"type":"array","minItems":2,"items":{"$ref":"#/$defs/tag"}},
           "address":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]},
           "nick":{"anyOf":[{"type":"string"},{"type":"null"}]}
         },
         "required":["name","age","score","active","email","born","kind","tags","address","nick"],
         "additionalProperties":false}
        """;

    private async Task<(string? Content, string? Finish)> AskAsync(string protocol, string model, string schema, bool stream = false)
    {
        var (adapter, path, type) = protocol switch
        {
            "anthropic" => ((IProviderAdapter)new AnthropicAdapter(Options, TimeProvider.System), "anthropic/", ProviderTypes.Anthropic),
            "llamacpp" => (new LlamaCppAdapter(Options, new TokenCounter()), "llamacpp/", ProviderTypes.LlamaCpp),
            _ => (new OpenAICompatibleAdapter(Options), "openai/v1/", ProviderTypes.OpenAICompatible),
        };
        var target = Target(type, model, baseUrl: new Uri(fake.Client.BaseAddress!, path).ToString(), apiKey: "sk-fake");
        var request = Request($$$$"""
            {"model":"alias","stream":{{{{(stream ? "true" : "false")}}}},"messages":[{"role":"user","content":"Describe someone"}],
             "response_format":{"type":"json_schema","json_schema":{"name":"person","schema":{{{{schema}}}}}}}
            """);
        using var response = await adapter.SendAsync(new ProviderCall(request, target, fake.Invoker), TestContext.Current.CancellationToken);
        if (stream)
        {
            var events = await ReadAllAsync(response);
            return (string.Concat(events.Select(e => e.ContentDelta)), events.Single(e => e.FinishReason is not null).FinishReason);
        }
        var completion = Assert.IsType<ProviderCompletion>(response);
        return (completion.Completion["choices"]![0]!["message"]!["content"]?.GetValue<string>(), completion.FinishReason);
    }

    private static OutputCheck Validate(string schema, string? content, bool coerce = false)
    {
        var parsed = (JsonObject)JsonNode.Parse(schema)!;
        var compiled = new SchemaCache().GetOrCompile(parsed, "response_format", out var error);
        Assert.Null(error);
        return OutputValidator.Check(new ResponseSchema(ResponseSchemaSource.JsonSchema, "person", parsed, false, coerce), compiled, content, coerce);
    }

    [Theory]
    [InlineData("openai", false)]
    [InlineData("openai", true)]
    [InlineData("anthropic", false)]
    [InlineData("anthropic", true)]
    [InlineData("llamacpp", false)]
    [InlineData("llamacpp", true)]
    public async Task Answers_a_valid_instance_of_the_schema(string protocol, bool stream)
    {
        var (content, finish) = await AskAsync(protocol, "fake-model", Rich, stream);

        var check = Validate(Rich, content);
        Assert.True(check.IsValid, $"{content}: {string.Join("; ", check.Violations)}");
        Assert.Equal("stop", finish);
    }

    [Theory]
    [InlineData("openai")]
    [InlineData("anthropic")]
    [InlineData("llamacpp")]
    public async Task Array_schema_answers_validate(string protocol)
    {
        const string schema = """{"type":"array","minItems":1,"items":{"type":"object","properties":{"id":{"type":"integer"}},"required":["id"]}}""";

        var (content, _) = await AskAsync(protocol, "fake-model", schema);

        Assert.Equal("""[{"id":1}]""", content);
    }

    [Theory]
    [InlineData("openai")]
    [InlineData("anthropic")]
    [InlineData("llamacpp")]
    public async Task Schema_invalid_json_fails_as_not_json(string protocol)
    {
        var (content, _) = await AskAsync(protocol, "schema-invalid-json", Rich);

        var check = Validate(Rich, content);
        Assert.False(check.IsValid);
        Assert.Equal("json", check.Violations.Single().Keyword);
    }

    [Theory]
    [InlineData("openai")]
    [InlineData("anthropic")]
    [InlineData("llamacpp")]
    public async Task Schema_code_fence_is_extracted_and_valid(string protocol)
    {
        var (content, _) = await AskAsync(protocol, "schema-code-fence", Rich);

        Assert.Contains("```json", content);
        Assert.True(Validate(Rich, content).IsValid);
    }

    [Theory]
    [InlineData("openai")]
    [InlineData("anthropic")]
    [InlineData("llamacpp")]
    public async Task Schema_wrong_types_fail_precisely_and_coercion_fixes_them(string protocol)
    {
        var (content, _) = await AskAsync(protocol, "schema-wrong-types", Rich);

        var strict = Validate(Rich, content);
        Assert.False(strict.IsValid);
        Assert.Equal(["/active|type", "/age|type", "/score|type"],
            strict.Violations.Select(v => $"{v.Pointer}|{v.Keyword}").Order(StringComparer.Ordinal));

        var coerced = Validate(Rich, content, coerce: true);
        Assert.True(coerced.IsValid, string.Join("; ", coerced.Violations));
        Assert.True(coerced.Coerced);
    }

    [Theory]
    [InlineData("openai")]
    [InlineData("anthropic")]
    [InlineData("llamacpp")]
    public async Task Schema_invalid_then_valid_is_repaired_by_a_second_call(string protocol)
    {
        var model = "schema-invalid-then-valid";
        await fake.Client.PostAsync("/_fake/reset", null, TestContext.Current.CancellationToken);

        var (first, _) = await AskAsync(protocol, model, Rich);
        var check = Validate(Rich, first);
        Assert.False(check.IsValid);
        Assert.Contains(check.Violations, v => v.Keyword == "required");

        var (second, _) = await AskAsync(protocol, model, Rich);
        Assert.True(Validate(Rich, second).IsValid);
    }
}
