using System.Text.Json.Nodes;
using ModelGateway.Api.Providers;
using ModelGateway.Api.Providers.Anthropic;
using ModelGateway.Api.Tests.FakeUpstream;
using static ModelGateway.Api.Tests.Providers.ProviderTestKit;

namespace ModelGateway.Api.Tests.Providers.Anthropic;

/// <summary>The Messages request the adapter builds, against the requests recorded from Anthropic's docs and SDKs.</summary>
public sealed class AnthropicRequestTests
{
    private const string MessageResponse = "anthropic_message_response.json";

    private static AnthropicAdapter Adapter() => new(Options, TimeProvider.System);

    private static async Task<JsonObject> BuildAsync(string openAIRequest, string model = "claude-sonnet-4-5", int defaultMaxTokens = 1024)
    {
        var upstream = StubUpstream.Fixture(MessageResponse);
        using var response = await SendAsync(Adapter(), Request(openAIRequest), Target(ProviderTypes.Anthropic, model,
            defaultMaxTokens: defaultMaxTokens), upstream);
        Assert.IsNotType<ProviderFailure>(response);
        return upstream.RequestBody!;
    }

    [Fact]
    public async Task Posts_to_v1_messages_with_api_key_and_version_headers()
    {
        var upstream = StubUpstream.Fixture(MessageResponse);
        using var response = await SendAsync(Adapter(), Request("""{"model":"chat-anthropic","messages":[{"role":"user","content":"hi"}]}"""),
            Target(ProviderTypes.Anthropic, "claude-sonnet-4-5", baseUrl: "http://fake.test/anthropic/", apiKey: "sk-ant-test"), upstream);

        Assert.Equal(HttpMethod.Post, upstream.Request!.Method);
        Assert.Equal("http://fake.test/anthropic/v1/messages", upstream.Request.RequestUri!.ToString());
        Assert.Equal("sk-ant-test", Assert.Single(upstream.Request.Headers.GetValues("x-api-key")));
        Assert.Equal("2023-06-01", Assert.Single(upstream.Request.Headers.GetValues("anthropic-version")));
        Assert.Null(upstream.Request.Headers.Authorization);
    }

    [Fact]
    public async Task Streaming_tool_request_matches_the_docs_example()
    {
        var body = await BuildAsync("""
            {"model":"chat-anthropic","max_tokens":1024,"stream":true,"tool_choice":"required",
             "tools":[{"type":"function","function":{"name":"get_weather","description":"Get the current weather in a given location",
               "parameters":{"type":"object","properties":{"location":{"type":"string","description":"The city and state, e.g. San Francisco, CA"}},"required":["location"]}}}],
             "messages":[{"role":"user","content":"What is the weather like in San Francisco?"}]}
            """);

        AssertJsonEqual(JsonNode.Parse(WireFixture.Text("anthropic_request_stream_tool_use.json")), body);
    }

    [Fact]
    public async Task Tool_result_follow_up_matches_the_sdk_recording()
    {
        var body = await BuildAsync("""
            {"model":"chat-anthropic","max_tokens":1000,"stream":false,
             "messages":[
               {"role":"user","content":"Use the test_tool with value \"test\", then provide a final response"},
               {"role":"assistant","content":"I'll use the test_tool with the value \"test\" as requested, then provide a final response.",
                "tool_calls":[{"id":"toolu_011LF2VkWpAfJnTKJcmh1PNf","type":"function","function":{"name":"test_tool","arguments":"{\"value\":\"test\"}"}}]},
               {"role":"tool","tool_call_id":"toolu_011LF2VkWpAfJnTKJcmh1PNf","content":"Tool result"}],
             "tools":[{"type":"function","function":{"name":"test_tool","description":"A test tool","parameters":
               {"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","properties":{"value":{"type":"string"}},"required":["value"],"additionalProperties":false}}}]}
            """, model: "claude-opus-4-8");

        var expected = JsonNode.Parse(WireFixture.Text("anthropic_request_tool_result.json"))!.AsObject();
        // "type":"custom" is the default tool type and "stream":false the default: the adapter leaves both out.
        expected["tools"]![0]!.AsObject().Remove("type");
        expected.Remove("stream");
        AssertJsonEqual(expected, body);
    }

    [Fact]
    public async Task System_blocks_cache_control_and_tool_history_match_the_prompt_caching_example()
    {
        var fixture = JsonNode.Parse(WireFixture.Text("anthropic_request_system_tools.json"))!.AsObject();
        var system = fixture["system"]!.AsArray();
        var tools = fixture["tools"]!.AsArray();
        JsonObject Tool(int i) => new()
        {
            ["type"] = "function",
            ["function"] = new JsonObject
            {
                ["name"] = tools[i]!["name"]!.DeepClone(),
                ["description"] = tools[i]!["description"]!.DeepClone(),
                ["parameters"] = tools[i]!["input_schema"]!.DeepClone(),
            },
        };
        var lastTool = Tool(1);
        lastTool["cache_control"] = new JsonObject { ["type"] = "ephemeral" };
        var request = new JsonObject
        {
            ["model"] = "chat-anthropic",
            ["max_tokens"] = 1024,
            ["tools"] = new JsonArray(Tool(0), lastTool),
            ["messages"] = new JsonArray(
                new JsonObject
                {
                    ["role"] = "system",
                    ["content"] = new JsonArray(system[0]!.DeepClone(), system[1]!.DeepClone()),
                },
                new JsonObject { ["role"] = "user", ["content"] = "Can you search for information about Mars rovers?" },
                new JsonObject
                {
                    ["role"] = "assistant",
                    ["content"] = null,
                    ["tool_calls"] = new JsonArray(new JsonObject
                    {
                        ["id"] = "tool_1",
                        ["type"] = "function",
                        ["function"] = new JsonObject { ["name"] = "search_documents", ["arguments"] = """{"query": "Mars rovers"}""" },
                    }),
                },
                new JsonObject
                {
                    ["role"] = "tool",
                    ["tool_call_id"] = "tool_1",
                    ["content"] = "Found 3 relevant documents: Document 3 (Mars Exploration), Document 7 (Rover Technology), Document 9 (Mission History)",
                },
                new JsonObject
                {
                    ["role"] = "assistant",
                    ["content"] = new JsonArray(new JsonObject
                    {
                        ["type"] = "text",
                        ["text"] = "I found 3 relevant documents about Mars rovers. Let me get more details from the Mars Exploration document.",
                    }),
                },
                new JsonObject
                {
                    ["role"] = "user",
                    ["content"] = new JsonArray(fixture["messages"]![4]!["content"]![0]!.DeepClone()),
                }),
        };

        var body = await BuildAsync(request.ToJsonString());

        AssertJsonEqual(fixture, body);
    }

    [Fact]
    public async Task System_and_developer_messages_all_go_to_system_in_order()
    {
        var body = await BuildAsync("""
            {"model":"m","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"hi"},
              {"role":"developer","content":"Answer in French."},{"role":"user","content":"again"}]}
            """);

        AssertJsonEqual(JsonNode.Parse("""[{"type":"text","text":"Be brief."},{"type":"text","text":"Answer in French."}]"""), body["system"]);
        // The two user messages, no longer separated, make one user turn.
        AssertJsonEqual(JsonNode.Parse("""[{"role":"user","content":[{"type":"text","text":"hi"},{"type":"text","text":"again"}]}]"""),
            body["messages"]);
    }

    [Fact]
    public async Task A_single_system_string_stays_a_string()
    {
        var body = await BuildAsync("""{"model":"m","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"hi"}]}""");

        Assert.Equal("Be brief.", body["system"]!.GetValue<string>());
        AssertJsonEqual(JsonNode.Parse("""[{"role":"user","content":"hi"}]"""), body["messages"]);
    }

    [Fact]
    public async Task Multi_turn_conversation_alternates_and_parallel_tool_results_share_one_user_turn()
    {
        var body = await BuildAsync("""
            {"model":"m","messages":[
              {"role":"user","content":"Weather in Paris and Rome?"},
              {"role":"assistant","content":"","tool_calls":[
                {"id":"call_1","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}},
                {"id":"call_2","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Rome\"}"}}]},
              {"role":"tool","tool_call_id":"call_1","content":"18C"},
              {"role":"tool","tool_call_id":"call_2","content":[{"type":"text","text":"24C"}]},
              {"role":"user","content":"Thanks. Which is warmer?"},
              {"role":"assistant","content":"Rome."},
              {"role":"user","content":"OK"}]}
            """);

        AssertJsonEqual(JsonNode.Parse("""
            [{"role":"user","content":"Weather in Paris and Rome?"},
             {"role":"assistant","content":[
               {"type":"tool_use","id":"call_1","name":"weather","input":{"city":"Paris"}},
               {"type":"tool_use","id":"call_2","name":"weather","input":{"city":"Rome"}}]},
             {"role":"user","content":[
               {"type":"tool_result","tool_use_id":"call_1","content":"18C"},
               {"type":"tool_result","tool_use_id":"call_2","content":[{"type":"text","text":"24C"}]},
               {"type":"text","text":"Thanks. Which is warmer?"}]},
             {"role":"assistant","content":"Rome."},
             {"role":"user","content":"OK"}]
            """), body["messages"]);
    }

    [Fact]
    public async Task Unparseable_tool_arguments_become_empty_input()
    {
        var body = await BuildAsync("""
            {"model":"m","messages":[{"role":"user","content":"go"},
              {"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{not json"}}]},
              {"role":"tool","tool_call_id":"c","content":"done"}]}
            """);

        AssertJsonEqual(new JsonObject(), body["messages"]![1]!["content"]![0]!["input"]);
    }

    [Fact]
    public async Task Images_become_base64_or_url_sources_beside_text()
    {
        var body = await BuildAsync("""
            {"model":"m","messages":[{"role":"user","content":[
              {"type":"text","text":"Compare these"},
              {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo=","detail":"high"}},
              {"type":"image_url","image_url":{"url":"https://example.com/cat.jpg"}}]}]}
            """);

        AssertJsonEqual(JsonNode.Parse("""
            [{"role":"user","content":[
              {"type":"text","text":"Compare these"},
              {"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},
              {"type":"image","source":{"type":"url","url":"https://example.com/cat.jpg"}}]}]
            """), body["messages"]);
    }

    [Fact]
    public async Task Sampling_fields_map_and_temperature_is_clamped_to_anthropic_range()
    {
        var body = await BuildAsync("""
            {"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":1.7,"top_p":0.9,"stop":["END","\n\n"],
             "user":"user-42","seed":7,"presence_penalty":0.5}
            """);

        Assert.Equal(1.0, body["temperature"]!.GetValue<double>());
        Assert.Equal(0.9, body["top_p"]!.GetValue<double>());
        AssertJsonEqual(JsonNode.Parse("""["END","\n\n"]"""), body["stop_sequences"]);
        AssertJsonEqual(JsonNode.Parse("""{"user_id":"user-42"}"""), body["metadata"]);
        Assert.False(body.ContainsKey("seed"));
        Assert.False(body.ContainsKey("presence_penalty"));
        Assert.False(body.ContainsKey("stop"));
        Assert.False(body.ContainsKey("stream"));
    }

    [Fact]
    public async Task Temperature_within_range_is_kept()
    {
        var body = await BuildAsync("""{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0.3,"stop":"END"}""");

        Assert.Equal(0.3, body["temperature"]!.GetValue<double>());
        AssertJsonEqual(JsonNode.Parse("""["END"]"""), body["stop_sequences"]);
    }

    [Fact]
    public async Task Max_tokens_is_the_clients_clamped_cap_or_the_routes_default()
    {
        var request = Request("""{"model":"m","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":5000}""");
        request.ClampMaxTokens(300);
        var upstream = StubUpstream.Fixture(MessageResponse);
        using (await SendAsync(Adapter(), request, Target(ProviderTypes.Anthropic, "m"), upstream))
        {
            Assert.Equal(300, upstream.RequestBody!["max_tokens"]!.GetValue<int>());
            Assert.False(upstream.RequestBody.ContainsKey("max_completion_tokens"));
        }

        var body = await BuildAsync("""{"model":"m","messages":[{"role":"user","content":"hi"}]}""", defaultMaxTokens: 2048);
        Assert.Equal(2048, body["max_tokens"]!.GetValue<int>());
    }

    [Theory]
    [InlineData("\"auto\"", """{"type":"auto"}""")]
    [InlineData("\"none\"", """{"type":"none"}""")]
    [InlineData("\"required\"", """{"type":"any"}""")]
    [InlineData("""{"type":"function","function":{"name":"get_weather"}}""", """{"type":"tool","name":"get_weather"}""")]
    public async Task Tool_choice_maps(string openAIChoice, string anthropicChoice)
    {
        var body = await BuildAsync($$$"""
            {"model":"m","messages":[{"role":"user","content":"hi"}],"tool_choice":{{{openAIChoice}}},
             "tools":[{"type":"function","function":{"name":"get_weather"}}]}
            """);

        AssertJsonEqual(JsonNode.Parse(anthropicChoice), body["tool_choice"]);
        // A function without parameters takes no arguments; input_schema is required, so it is an empty object schema.
        AssertJsonEqual(JsonNode.Parse("""[{"name":"get_weather","input_schema":{"type":"object","properties":{}}}]"""), body["tools"]);
    }

    [Fact]
    public async Task Parallel_tool_calls_false_disables_parallel_tool_use()
    {
        var body = await BuildAsync("""
            {"model":"m","messages":[{"role":"user","content":"hi"}],"parallel_tool_calls":false,
             "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]}
            """);

        AssertJsonEqual(JsonNode.Parse("""{"type":"auto","disable_parallel_tool_use":true}"""), body["tool_choice"]);
    }

    [Fact]
    public async Task No_tools_means_no_tool_choice()
    {
        var body = await BuildAsync("""{"model":"m","messages":[{"role":"user","content":"hi"}],"tool_choice":"none"}""");

        Assert.False(body.ContainsKey("tools"));
        Assert.False(body.ContainsKey("tool_choice"));
    }

    [Fact]
    public async Task Content_anthropic_cannot_take_is_refused_before_sending()
    {
        var upstream = StubUpstream.Fixture(MessageResponse);
        using var response = await SendAsync(Adapter(), Request("""
            {"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}}]}]}
            """), Target(ProviderTypes.Anthropic, "m"), upstream);

        var failure = Assert.IsType<ProviderFailure>(response);
        Assert.Equal(400, failure.StatusCode);
        Assert.Equal("invalid_request_error", failure.Type);
        Assert.False(failure.Retryable);
        Assert.Contains("input_audio", failure.Message);
        Assert.Null(upstream.Request);
    }
}
