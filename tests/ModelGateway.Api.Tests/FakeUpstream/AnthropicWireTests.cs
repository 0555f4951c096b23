using System.Text.Json;
using static ModelGateway.Api.Tests.FakeUpstream.FakeUpstreamApp;

namespace ModelGateway.Api.Tests.FakeUpstream;

/// <summary>The Anthropic Messages endpoint against the recorded Anthropic payloads in shared/wire.</summary>
public sealed class AnthropicWireTests(FakeUpstreamApp app) : IClassFixture<FakeUpstreamApp>
{
    private const string Hello = """{"model":"claude-test","max_tokens":100,"system":"Be brief.","messages":[{"role":"user","content":"Hello big world"}]}""";

    private static readonly string[] DocumentedSequence =
        ["message_start", "content_block_start", "ping", "content_block_delta", "content_block_stop", "message_delta", "message_stop"];

    [Fact]
    public async Task Message_has_the_recorded_shape_the_echo_and_the_contract_usage()
    {
        var body = await app.PostJsonAsync(AnthropicPath, Hello);

        JsonShape.AssertMatches(WireFixture.Json("anthropic_message_response.json"), body, exactKeys: true);
        Assert.Equal("claude-test", body.GetProperty("model").GetString());
        Assert.Equal("text", body.GetProperty("content")[0].GetProperty("type").GetString());
        Assert.Equal("Echo: Hello big world", body.GetProperty("content")[0].GetProperty("text").GetString());
        Assert.Equal("end_turn", body.GetProperty("stop_reason").GetString());
        // The system prompt counts as a message, as it would in the OpenAI form of the same conversation.
        Assert.Equal(WireFixture.InputTokens("Be brief.", "Hello big world"), body.GetProperty("usage").GetProperty("input_tokens").GetInt32());
        Assert.Equal(4, body.GetProperty("usage").GetProperty("output_tokens").GetInt32());
        Assert.Equal(0, body.GetProperty("usage").GetProperty("cache_read_input_tokens").GetInt32());
    }

    [Fact]
    public async Task Stream_follows_the_documented_event_sequence_with_recorded_shapes()
    {
        var events = await app.PostStreamAsync(AnthropicPath, Hello.Replace("\"max_tokens\":100", "\"max_tokens\":100,\"stream\":true"));
        var documented = WireFixture.Stream("anthropic_stream_text.sse");
        var recorded = WireFixture.Stream("anthropic_stream_text_recorded.sse");

        Assert.Equal(DocumentedSequence, Collapse(events.Select(e => e.Event!)));
        Assert.Equal(Collapse(documented.Select(e => e.Event!)), Collapse(events.Select(e => e.Event!)));
        Assert.Equal(4, events.Count(e => e.Event == "content_block_delta"));
        Assert.All(events, e => Assert.Equal(e.Event, e.Json.GetProperty("type").GetString()));
        // Shapes event by event against the recorded stream (same event kinds, same keys and order).
        foreach (var name in DocumentedSequence)
        {
            JsonShape.AssertMatches(recorded.First(e => e.Event == name).Json, events.First(e => e.Event == name).Json, exactKeys: true);
        }
        Assert.Equal(documented.Single(e => e.Event == "ping").Data, events.Single(e => e.Event == "ping").Data);

        var text = string.Concat(events.Where(e => e.Event == "content_block_delta")
            .Select(e => e.Json.GetProperty("delta").GetProperty("text").GetString()));
        Assert.Equal("Echo: Hello big world", text);
        var start = events[0].Json.GetProperty("message").GetProperty("usage");
        Assert.Equal(WireFixture.InputTokens("Be brief.", "Hello big world"), start.GetProperty("input_tokens").GetInt32());
        var delta = events.Single(e => e.Event == "message_delta").Json;
        Assert.Equal("end_turn", delta.GetProperty("delta").GetProperty("stop_reason").GetString());
        Assert.Equal(4, delta.GetProperty("usage").GetProperty("output_tokens").GetInt32());
    }

    [Fact]
    public async Task Tool_use_answer_has_the_recorded_block_shape_and_schema_arguments()
    {
        var request = WireFixture.Text("anthropic_request_stream_tool_use.json").Replace("\"stream\": true", "\"stream\": false");
        var body = await app.PostJsonAsync(AnthropicPath, request);
        var fixture = WireFixture.Json("anthropic_message_tool_use_response.json");

        // The recording has a text block before the tool_use block; the fake answers the tool_use alone.
        Assert.Equal(JsonShape.Keys(fixture), JsonShape.Keys(body));
        JsonShape.AssertMatches(fixture.GetProperty("usage"), body.GetProperty("usage"), exactKeys: false);
        var block = body.GetProperty("content")[0];
        Assert.Equal(JsonShape.Keys(fixture.GetProperty("content")[1]), JsonShape.Keys(block));
        Assert.Equal("toolu_fake_1", block.GetProperty("id").GetString());
        Assert.Equal("get_weather", block.GetProperty("name").GetString());
        Assert.Equal("test", block.GetProperty("input").GetProperty("location").GetString());
        Assert.Equal("tool_use", body.GetProperty("stop_reason").GetString());
        Assert.Equal(5, body.GetProperty("usage").GetProperty("output_tokens").GetInt32());
    }

    [Fact]
    public async Task Streamed_tool_use_sends_input_json_delta_fragments()
    {
        var events = await app.PostStreamAsync(AnthropicPath, WireFixture.Text("anthropic_request_stream_tool_use.json"));
        var recorded = WireFixture.Stream("anthropic_stream_tool_use.sse");

        Assert.Equal(DocumentedSequence, Collapse(events.Select(e => e.Event!)));
        var recordedToolStart = recorded.First(e => e.Event == "content_block_start" && e.Data.Contains("tool_use")).Json;
        JsonShape.AssertMatches(recordedToolStart, events.Single(e => e.Event == "content_block_start").Json, exactKeys: true);
        var deltas = events.Where(e => e.Event == "content_block_delta").Select(e => e.Json).ToList();
        JsonShape.AssertMatches(recorded.First(e => e.Data.Contains("input_json_delta")).Json, deltas[0], exactKeys: true);
        Assert.All(deltas, d => Assert.Equal("input_json_delta", d.GetProperty("delta").GetProperty("type").GetString()));
        Assert.Equal("", deltas[0].GetProperty("delta").GetProperty("partial_json").GetString());
        Assert.True(deltas.Count >= 3, "empty first delta, then several fragments");
        var input = string.Concat(deltas.Select(d => d.GetProperty("delta").GetProperty("partial_json").GetString()));
        Assert.Equal("""{"location":"test"}""", input);
        var messageDelta = events.Single(e => e.Event == "message_delta").Json;
        Assert.Equal("tool_use", messageDelta.GetProperty("delta").GetProperty("stop_reason").GetString());
        Assert.Equal(5, messageDelta.GetProperty("usage").GetProperty("output_tokens").GetInt32());
    }

    [Fact]
    public async Task Tool_result_is_answered_with_its_text()
    {
        var body = await app.PostJsonAsync(AnthropicPath, WireFixture.Text("anthropic_request_tool_result.json"));

        Assert.Equal("Tool said: Tool result", body.GetProperty("content")[0].GetProperty("text").GetString());
        Assert.Equal("end_turn", body.GetProperty("stop_reason").GetString());
        Assert.Equal(
            WireFixture.InputTokens(
                "Use the test_tool with value \"test\", then provide a final response",
                "I'll use the test_tool with the value \"test\" as requested, then provide a final response.",
                "Tool result"),
            body.GetProperty("usage").GetProperty("input_tokens").GetInt32());
    }

    [Fact]
    public async Task System_blocks_and_tools_call_the_first_tool_when_the_user_spoke_last()
    {
        var fixture = WireFixture.Json("anthropic_request_system_tools.json");
        var body = await app.PostJsonAsync(AnthropicPath, WireFixture.Text("anthropic_request_system_tools.json"));

        var block = body.GetProperty("content")[0];
        Assert.Equal("search_documents", block.GetProperty("name").GetString());
        Assert.Equal("""{"query":"test"}""", block.GetProperty("input").GetRawText());
        var system = string.Join(" ", fixture.GetProperty("system").EnumerateArray().Select(b => b.GetProperty("text").GetString()));
        var expected = WireFixture.InputTokens(
            system,
            "Can you search for information about Mars rovers?",
            "",
            "Found 3 relevant documents: Document 3 (Mars Exploration), Document 7 (Rover Technology), Document 9 (Mission History)",
            "I found 3 relevant documents about Mars rovers. Let me get more details from the Mars Exploration document.",
            "Yes, please tell me about the Perseverance rover specifically.");
        Assert.Equal(expected, body.GetProperty("usage").GetProperty("input_tokens").GetInt32());
    }

    [Fact]
    public async Task Named_tool_choice_calls_that_tool_and_none_calls_nothing()
    {
        const string Tools = """[{"name":"a","input_schema":{"type":"object"}},{"name":"b","input_schema":{"type":"object","properties":{"n":{"type":"number"},"ok":{"type":"boolean"}},"required":["n","ok"]}}]""";
        var named = await app.PostJsonAsync(AnthropicPath,
            $$"""{"model":"c","max_tokens":5,"tools":{{Tools}},"tool_choice":{"type":"tool","name":"b"},"messages":[{"role":"user","content":"x"}]}""");
        var none = await app.PostJsonAsync(AnthropicPath,
            $$"""{"model":"c","max_tokens":5,"tools":{{Tools}},"tool_choice":{"type":"none"},"messages":[{"role":"user","content":"x"}]}""");

        Assert.Equal("b", named.GetProperty("content")[0].GetProperty("name").GetString());
        Assert.Equal("""{"n":1,"ok":true}""", named.GetProperty("content")[0].GetProperty("input").GetRawText());
        Assert.Equal("text", none.GetProperty("content")[0].GetProperty("type").GetString());
    }

    [Fact]
    public async Task Max_tokens_stops_with_stop_reason_max_tokens()
    {
        var body = await app.PostJsonAsync(AnthropicPath, """{"model":"c","max_tokens":3,"messages":[{"role":"user","content":"one two three"}]}""");

        Assert.Equal("Echo: one two", body.GetProperty("content")[0].GetProperty("text").GetString());
        Assert.Equal("max_tokens", body.GetProperty("stop_reason").GetString());
        Assert.Equal(JsonValueKind.Null, body.GetProperty("stop_sequence").ValueKind);
        Assert.Equal(3, body.GetProperty("usage").GetProperty("output_tokens").GetInt32());
    }

    [Fact]
    public async Task Stop_sequence_ends_the_reply_and_is_reported()
    {
        var events = await app.PostStreamAsync(AnthropicPath,
            """{"model":"c","max_tokens":50,"stream":true,"stop_sequences":["three"],"messages":[{"role":"user","content":[{"type":"text","text":"one two three four"}]}]}""");

        var text = string.Concat(events.Where(e => e.Event == "content_block_delta").Select(e => e.Json.GetProperty("delta").GetProperty("text").GetString()));
        Assert.Equal("Echo: one two ", text);
        var delta = events.Single(e => e.Event == "message_delta").Json.GetProperty("delta");
        Assert.Equal("stop_sequence", delta.GetProperty("stop_reason").GetString());
        Assert.Equal("three", delta.GetProperty("stop_sequence").GetString());
    }

    [Fact]
    public async Task Missing_max_tokens_is_an_invalid_request_error()
    {
        var body = await app.PostJsonAsync(AnthropicPath, """{"model":"c","messages":[{"role":"user","content":"x"}]}""", expectedStatus: 400);

        JsonShape.AssertMatches(WireFixture.Json("anthropic_error_rate_limit_429.json"), body, exactKeys: true);
        Assert.Equal("invalid_request_error", body.GetProperty("error").GetProperty("type").GetString());
        Assert.Contains("max_tokens", body.GetProperty("error").GetProperty("message").GetString());
    }

    [Theory]
    [InlineData(false, true, 401, "authentication_error")]
    [InlineData(true, false, 400, "invalid_request_error")]
    public async Task Missing_api_key_or_version_header_is_refused(bool sendKey, bool sendVersion, int status, string type)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, AnthropicPath) { Content = new StringContent(Hello) };
        if (sendKey)
        {
            request.Headers.Add("x-api-key", "k");
        }
        if (sendVersion)
        {
            request.Headers.Add("anthropic-version", "2023-06-01");
        }
        using var response = await app.Client.SendAsync(request, TestContext.Current.CancellationToken);
        var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken)).RootElement;

        Assert.Equal(status, (int)response.StatusCode);
        Assert.Equal("error", body.GetProperty("type").GetString());
        Assert.Equal(type, body.GetProperty("error").GetProperty("type").GetString());
    }

    /// <summary>Collapses runs of the same event (the deltas) so sequences of different lengths compare.</summary>
    private static List<string> Collapse(IEnumerable<string> names)
    {
        var result = new List<string>();
        foreach (var name in names)
        {
            if (result.Count == 0 || result[^1] != name)
            {
                result.Add(name);
            }
        }
        return result;
    }
}
