using System.Text.Json;
using static ModelGateway.Api.Tests.FakeUpstream.FakeUpstreamApp;

namespace ModelGateway.Api.Tests.FakeUpstream;

/// <summary>The OpenAI endpoint against the recorded OpenAI payloads in shared/wire.</summary>
public sealed class OpenAIWireTests(FakeUpstreamApp app) : IClassFixture<FakeUpstreamApp>
{
    private const string Hello = """{"model":"gpt-test","messages":[{"role":"developer","content":"You are a helpful assistant."},{"role":"user","content":"Hello big world"}]}""";

    [Fact]
    public async Task Completion_has_the_fixture_shape_the_echo_and_the_contract_usage()
    {
        var body = await app.PostJsonAsync(OpenAIPath, Hello);

        JsonShape.AssertMatches(WireFixture.Json("openai_chat_completion_response.json"), body, exactKeys: true);
        Assert.Equal("chat.completion", body.GetProperty("object").GetString());
        Assert.Equal("gpt-test", body.GetProperty("model").GetString());
        var choice = body.GetProperty("choices")[0];
        Assert.Equal("Echo: Hello big world", choice.GetProperty("message").GetProperty("content").GetString());
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        var usage = body.GetProperty("usage");
        var input = WireFixture.InputTokens("You are a helpful assistant.", "Hello big world");
        Assert.Equal(input, usage.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(4, usage.GetProperty("completion_tokens").GetInt32());
        Assert.Equal(input + 4, usage.GetProperty("total_tokens").GetInt32());
    }

    [Fact]
    public async Task Stream_without_include_usage_matches_the_recording_and_sends_no_usage()
    {
        var events = await app.PostStreamAsync(OpenAIPath, """{"model":"gpt-test","stream":true,"messages":[{"role":"user","content":"Hello big world"}]}""");
        var recorded = WireFixture.Stream("openai_chat_stream_text_usage.sse");

        Assert.All(events, e => Assert.Null(e.Event));
        Assert.Equal("[DONE]", events[^1].Data);
        var chunks = events[..^1].Select(e => e.Json).ToList();
        // role chunk, one chunk per word, finish chunk; the recording's last JSON chunk is its usage chunk.
        Assert.Equal(1 + 4 + 1, chunks.Count);
        JsonShape.AssertMatches(recorded[0].Json, chunks[0], exactKeys: true);
        JsonShape.AssertMatches(recorded[1].Json, chunks[1], exactKeys: true);
        JsonShape.AssertMatches(recorded[^3].Json, chunks[^1], exactKeys: true);
        Assert.Equal(["role", "content", "refusal"], JsonShape.Keys(chunks[0].GetProperty("choices")[0].GetProperty("delta")));
        Assert.Equal("", chunks[0].GetProperty("choices")[0].GetProperty("delta").GetProperty("content").GetString());
        Assert.Equal(["Echo:", " Hello", " big", " world"],
            chunks[1..^1].Select(c => c.GetProperty("choices")[0].GetProperty("delta").GetProperty("content").GetString()));
        Assert.Equal("stop", chunks[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.Empty(chunks[^1].GetProperty("choices")[0].GetProperty("delta").EnumerateObject());
        Assert.All(chunks, c => Assert.False(c.TryGetProperty("usage", out _)));
        Assert.Single(chunks.Select(c => c.GetProperty("id").GetString()).Distinct());
    }

    [Fact]
    public async Task Stream_with_include_usage_ends_with_a_usage_chunk_with_empty_choices()
    {
        var events = await app.PostStreamAsync(OpenAIPath,
            """{"model":"gpt-test","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Hello big world"}]}""");
        var recordedUsage = WireFixture.Stream("openai_chat_stream_text_usage.sse")[^2].Json;

        Assert.Equal("[DONE]", events[^1].Data);
        var usageChunk = events[^2].Json;
        JsonShape.AssertMatches(recordedUsage, usageChunk, exactKeys: false);
        Assert.Equal(0, usageChunk.GetProperty("choices").GetArrayLength());
        Assert.Equal(WireFixture.InputTokens("Hello big world"), usageChunk.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(4, usageChunk.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        // Every other chunk carries "usage": null (API reference for stream_options.include_usage).
        Assert.All(events[..^2], e => Assert.Equal(JsonValueKind.Null, e.Json.GetProperty("usage").ValueKind));
    }

    [Fact]
    public async Task Tools_request_answers_a_tool_call_built_from_the_schema()
    {
        var body = await app.PostJsonAsync(OpenAIPath, WireFixture.Text("openai_chat_tools_request.json"));
        var fixture = WireFixture.Json("openai_chat_tool_calls_response.json");

        JsonShape.AssertMatches(fixture, body, exactKeys: false);
        var choice = body.GetProperty("choices")[0];
        Assert.Equal("tool_calls", choice.GetProperty("finish_reason").GetString());
        Assert.Equal(JsonValueKind.Null, choice.GetProperty("message").GetProperty("content").ValueKind);
        var call = choice.GetProperty("message").GetProperty("tool_calls")[0];
        Assert.Equal("call_fake_1", call.GetProperty("id").GetString());
        Assert.Equal("get_current_weather", call.GetProperty("function").GetProperty("name").GetString());
        // Only "location" is required: it gets "test"; the optional "unit" is left out.
        Assert.Equal("""{"location":"test"}""", call.GetProperty("function").GetProperty("arguments").GetString());
        Assert.Equal(5, body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task Streamed_tool_call_sends_id_and_name_first_then_argument_fragments()
    {
        var events = await app.PostStreamAsync(OpenAIPath, WireFixture.Text("openai_chat_stream_tool_call_request.json"));
        var recorded = WireFixture.Stream("openai_chat_stream_tool_call.sse");

        var chunks = events[..^1].Select(e => e.Json).ToList();
        JsonShape.AssertMatches(recorded[0].Json, chunks[0], exactKeys: true);
        JsonShape.AssertMatches(recorded[1].Json, chunks[1], exactKeys: true);
        JsonShape.AssertMatches(recorded[^3].Json, chunks[^1], exactKeys: true);
        var first = chunks[0].GetProperty("choices")[0].GetProperty("delta").GetProperty("tool_calls")[0];
        Assert.Equal("call_fake_1", first.GetProperty("id").GetString());
        Assert.Equal("get_weather", first.GetProperty("function").GetProperty("name").GetString());
        Assert.Equal("", first.GetProperty("function").GetProperty("arguments").GetString());

        var fragments = chunks[1..^1]
            .Select(c => c.GetProperty("choices")[0].GetProperty("delta").GetProperty("tool_calls")[0].GetProperty("function").GetProperty("arguments").GetString())
            .ToList();
        Assert.True(fragments.Count >= 2, "the arguments arrive in several fragments");
        Assert.Equal("""{"city":"test","state":"test"}""", string.Concat(fragments));
        Assert.Equal("tool_calls", chunks[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.Equal("[DONE]", events[^1].Data);
    }

    [Fact]
    public async Task Last_message_from_a_tool_is_answered_with_its_result()
    {
        var body = await app.PostJsonAsync(OpenAIPath, """
            {"model":"gpt-test","messages":[
              {"role":"user","content":"weather?"},
              {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"w","arguments":"{}"}}]},
              {"role":"tool","tool_call_id":"call_1","content":"sunny and 20C"}],
             "tools":[{"type":"function","function":{"name":"w","parameters":{"type":"object"}}}]}
            """);

        Assert.Equal("Tool said: sunny and 20C", body.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
        Assert.Equal(WireFixture.InputTokens("weather?", "", "sunny and 20C"), body.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
    }

    [Fact]
    public async Task Tool_choice_none_answers_text()
    {
        var body = await app.PostJsonAsync(OpenAIPath, """
            {"model":"gpt-test","tool_choice":"none","messages":[{"role":"user","content":"hi"}],
             "tools":[{"type":"function","function":{"name":"w","parameters":{"type":"object"}}}]}
            """);

        Assert.Equal("Echo: hi", body.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
    }

    [Theory]
    [InlineData("max_tokens")]
    [InlineData("max_completion_tokens")]
    public async Task Max_tokens_cuts_the_reply_with_finish_reason_length(string field)
    {
        var body = await app.PostJsonAsync(OpenAIPath, $$"""{"model":"gpt-test","{{field}}":2,"messages":[{"role":"user","content":"one two three"}]}""");

        var choice = body.GetProperty("choices")[0];
        Assert.Equal("Echo: one", choice.GetProperty("message").GetProperty("content").GetString());
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
        Assert.Equal(2, body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task Stop_string_ends_the_reply_before_it_and_streams_accordingly()
    {
        var events = await app.PostStreamAsync(OpenAIPath,
            """{"model":"gpt-test","stream":true,"stream_options":{"include_usage":true},"stop":["zz","two"],"messages":[{"role":"user","content":"one two three"}]}""");

        var chunks = events[..^1].Select(e => e.Json).ToList();
        var text = string.Concat(chunks.Skip(1).Where(c => c.GetProperty("choices").GetArrayLength() > 0)
            .Select(c => c.GetProperty("choices")[0].GetProperty("delta").TryGetProperty("content", out var t) ? t.GetString() : ""));
        Assert.Equal("Echo: one ", text);
        Assert.Equal("stop", chunks[^2].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.Equal(2, chunks[^1].GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task Empty_user_message_gives_echo_prefix_only()
    {
        var body = await app.PostJsonAsync(OpenAIPath, """{"model":"gpt-test","messages":[{"role":"user","content":[{"type":"text","text":""}]}]}""");

        Assert.Equal("Echo: ", body.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
        Assert.Equal(1, body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task Content_parts_are_joined_with_a_space()
    {
        var body = await app.PostJsonAsync(OpenAIPath,
            """{"model":"gpt-test","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"b"}]}]}""");

        Assert.Equal("Echo: a b", body.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
    }

    [Fact]
    public async Task Missing_model_is_a_400_in_the_openai_error_envelope()
    {
        var body = await app.PostJsonAsync(OpenAIPath, """{"messages":[{"role":"user","content":"hi"}]}""", expectedStatus: 400);

        var required = WireFixture.Json("openai_error_schema.json").GetProperty("Error").GetProperty("required")
            .EnumerateArray().Select(r => r.GetString()).Order();
        Assert.Equal(required, JsonShape.Keys(body.GetProperty("error")).Order());
        Assert.Equal("invalid_request_error", body.GetProperty("error").GetProperty("type").GetString());
    }

    [Fact]
    public async Task Response_format_json_schema_request_is_answered_with_an_instance_of_the_schema()
    {
        var body = await app.PostJsonAsync(OpenAIPath, WireFixture.Text("openai_chat_request_response_format_json_schema.json"));

        // The minimal instance: required properties only, arrays at minItems (0), strings "test".
        Assert.Equal("""{"steps":[],"final_answer":"test"}""", body.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
    }
}
