using System.Text.Json.Nodes;
using ModelGateway.Api.Providers;
using ModelGateway.Api.Providers.Anthropic;
using ModelGateway.Api.Providers.LlamaCpp;
using ModelGateway.Api.Providers.OpenAICompatible;
using ModelGateway.Api.StructuredOutput;
using ModelGateway.Api.Tests.Providers;
using ModelGateway.Api.Tokenization;
using static ModelGateway.Api.Tests.Providers.ProviderTestKit;

namespace ModelGateway.Api.Tests.StructuredOutput;

/// <summary>Each provider's constraint mechanism in the upstream body, and the Anthropic tool input mapped back to content.</summary>
public sealed class ProviderConstraintTests
{
    private const string PersonSchema = """{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"}},"required":["name","age"]}""";

    private static IProviderAdapter Adapter(string protocol) => protocol switch
    {
        "anthropic" => new AnthropicAdapter(Options, TimeProvider.System),
        "llamacpp" => new LlamaCppAdapter(Options, new TokenCounter()),
        _ => new OpenAICompatibleAdapter(Options),
    };

    private static string TypeOf(string protocol) => protocol switch
    {
        "anthropic" => ProviderTypes.Anthropic,
        "llamacpp" => ProviderTypes.LlamaCpp,
        _ => ProviderTypes.OpenAICompatible,
    };

    private static async Task<JsonObject> UpstreamBodyAsync(string protocol, string request)
    {
        var upstream = StubUpstream.Json("{}");
        using var _ = await SendAsync(Adapter(protocol), Request(request), Target(TypeOf(protocol), "up"), upstream);
        return upstream.RequestBody!;
    }

    [Theory]
    [InlineData("openai")]
    [InlineData("llamacpp")]
    public async Task Response_format_json_schema_passes_through(string protocol)
    {
        var body = await UpstreamBodyAsync(protocol, $$$$"""
            {"model":"m","messages":[{"role":"user","content":"hi"}],"coerce":true,
             "response_format":{"type":"json_schema","json_schema":{"name":"person","strict":true,"schema":{{{{PersonSchema}}}}}}}
            """);

        AssertJsonEqual(JsonNode.Parse($$$$"""{"type":"json_schema","json_schema":{"name":"person","strict":true,"schema":{{{{PersonSchema}}}}}}"""),
            body["response_format"]);
        Assert.False(body.ContainsKey("coerce"));
    }

    [Theory]
    [InlineData("openai")]
    [InlineData("llamacpp")]
    public async Task Response_schema_extension_becomes_response_format(string protocol)
    {
        var body = await UpstreamBodyAsync(protocol, $$$$"""
            {"model":"m","messages":[{"role":"user","content":"hi"}],"response_schema":{{{{PersonSchema}}}},"coerce":false}
            """);

        AssertJsonEqual(JsonNode.Parse($$$$"""{"type":"json_schema","json_schema":{"name":"response","schema":{{{{PersonSchema}}}},"strict":false}}"""),
            body["response_format"]);
        Assert.False(body.ContainsKey("response_schema"));
        Assert.False(body.ContainsKey("coerce"));
    }

    [Fact]
    public async Task Json_object_passes_through()
    {
        var body = await UpstreamBodyAsync("llamacpp", """
            {"model":"m","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_object"}}
            """);

        AssertJsonEqual(JsonNode.Parse("""{"type":"json_object"}"""), body["response_format"]);
    }

    [Fact]
    public async Task Anthropic_forces_one_tool_whose_input_schema_is_the_schema()
    {
        var body = await UpstreamBodyAsync("anthropic", $$$$"""
            {"model":"m","messages":[{"role":"user","content":"hi"}],
             "response_format":{"type":"json_schema","json_schema":{"name":"person","schema":{{{{PersonSchema}}}}}}}
            """);

        var tool = Assert.Single(body["tools"]!.AsArray())!;
        Assert.Equal("person", tool["name"]!.GetValue<string>());
        AssertJsonEqual(JsonNode.Parse(PersonSchema), tool["input_schema"]);
        AssertJsonEqual(JsonNode.Parse("""{"type":"tool","name":"person"}"""), body["tool_choice"]);
        Assert.False(body.ContainsKey("response_format"));
    }

    [Fact]
    public async Task Anthropic_wraps_a_non_object_schema_keeping_defs_resolvable()
    {
        var body = await UpstreamBodyAsync("anthropic", """
            {"model":"m","messages":[{"role":"user","content":"hi"}],
             "response_schema":{"$defs":{"t":{"type":"string"}},"type":"array","items":{"$ref":"#/$defs/t"}}}
            """);

        var tool = Assert.Single(body["tools"]!.AsArray())!;
        Assert.Equal("response", tool["name"]!.GetValue<string>());
        AssertJsonEqual(JsonNode.Parse("""
            {"type":"object","$defs":{"t":{"type":"string"}},"properties":{"value":{"type":"array","items":{"$ref":"#/$defs/t"}}},"required":["value"]}
            """), tool["input_schema"]);
    }

    [Fact]
    public async Task Anthropic_json_object_forces_an_object_tool()
    {
        var body = await UpstreamBodyAsync("anthropic", """
            {"model":"m","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_object"}}
            """);

        AssertJsonEqual(JsonNode.Parse("""{"type":"object"}"""), body["tools"]![0]!["input_schema"]);
        AssertJsonEqual(JsonNode.Parse("""{"type":"tool","name":"response"}"""), body["tool_choice"]);
    }

    [Fact]
    public async Task Anthropic_tool_input_becomes_content_with_finish_reason_stop()
    {
        var upstream = StubUpstream.Json("""
            {"id":"msg_1","type":"message","role":"assistant","model":"claude","stop_reason":"tool_use",
             "content":[{"type":"tool_use","id":"toolu_1","name":"person","input":{"name":"Ada","age":36}}],
             "usage":{"input_tokens":10,"output_tokens":5}}
            """);
        using var response = await SendAsync(Adapter("anthropic"), Request($$$$"""
            {"model":"m","messages":[{"role":"user","content":"hi"}],
             "response_format":{"type":"json_schema","json_schema":{"name":"person","schema":{{{{PersonSchema}}}}}}}
            """), Target(ProviderTypes.Anthropic, "up"), upstream);

        var completion = Assert.IsType<ProviderCompletion>(response);
        var message = completion.Completion["choices"]![0]!["message"]!;
        AssertJsonEqual(JsonNode.Parse("""{"name":"Ada","age":36}"""), JsonNode.Parse(message["content"]!.GetValue<string>()));
        Assert.Null(message["tool_calls"]);
        Assert.Equal("stop", completion.FinishReason);
    }

    [Fact]
    public async Task Anthropic_stream_input_json_deltas_become_content_deltas()
    {
        var upstream = StubUpstream.Sse(Sse(
            """{"type":"message_start","message":{"id":"msg_1","model":"claude","usage":{"input_tokens":3,"output_tokens":1}}}""",
            """{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_1","name":"person","input":{}}}""",
            """{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":""}}""",
            """{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"name\":\"A"}}""",
            """{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"da\",\"age\":36}"}}""",
            """{"type":"content_block_stop","index":0}""",
            """{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":9}}""",
            """{"type":"message_stop"}"""));
        using var response = await SendAsync(Adapter("anthropic"), Request($$$$"""
            {"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}],
             "response_format":{"type":"json_schema","json_schema":{"name":"person","schema":{{{{PersonSchema}}}}}}}
            """), Target(ProviderTypes.Anthropic, "up"), upstream);
        var events = await ReadAllAsync(response);

        Assert.Equal("""{"name":"Ada","age":36}""", string.Concat(events.Select(e => e.ContentDelta)));
        Assert.DoesNotContain(events, e => Json(e)["choices"] is JsonArray { Count: > 0 } c && c[0]!["delta"]!["tool_calls"] is not null);
        Assert.Equal("stop", events.Single(e => e.FinishReason is not null).FinishReason);
    }

    [Fact]
    public async Task Anthropic_stream_of_a_wrapped_schema_sends_the_unwrapped_value()
    {
        var upstream = StubUpstream.Sse(Sse(
            """{"type":"message_start","message":{"id":"msg_1","model":"claude","usage":{"input_tokens":3,"output_tokens":1}}}""",
            """{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_1","name":"response","input":{}}}""",
            """{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"value\":[\"a\","}}""",
            """{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"\"b\"]}"}}""",
            """{"type":"content_block_stop","index":0}""",
            """{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":9}}""",
            """{"type":"message_stop"}"""));
        using var response = await SendAsync(Adapter("anthropic"), Request("""
            {"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}],"response_schema":{"type":"array","items":{"type":"string"}}}
            """), Target(ProviderTypes.Anthropic, "up"), upstream);
        var events = await ReadAllAsync(response);

        Assert.Equal("""["a","b"]""", string.Concat(events.Select(e => e.ContentDelta)));
        Assert.Equal("stop", events.Single(e => e.FinishReason is not null).FinishReason);
    }

    private static string Sse(params string[] events) =>
        string.Concat(events.Select(e => $"event: {JsonNode.Parse(e)!["type"]}\ndata: {e}\n\n"));
}
