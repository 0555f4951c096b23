using System.Text.Json;
using static ModelGateway.Api.Tests.FakeUpstream.FakeUpstreamApp;

namespace ModelGateway.Api.Tests.FakeUpstream;

/// <summary>
/// The llama.cpp endpoint against shared/wire's llama.cpp requests and errors and the README notes
/// (key order, first delta, timings placement, usage only when asked).
/// </summary>
public sealed class LlamaCppWireTests(FakeUpstreamApp app) : IClassFixture<FakeUpstreamApp>
{
    private static readonly string[] TimingKeys =
        ["cache_n", "prompt_n", "prompt_ms", "prompt_per_token_ms", "prompt_per_second", "predicted_n", "predicted_ms", "predicted_per_token_ms", "predicted_per_second"];

    private static readonly string[] ChunkKeys = ["choices", "created", "id", "model", "system_fingerprint", "object"];

    [Fact]
    public async Task Completion_carries_usage_and_timings_in_llama_cpp_order()
    {
        var body = await app.PostJsonAsync(LlamaCppPath, WireFixture.Text("llamacpp_chat_request.json"));

        Assert.Equal(["choices", "created", "model", "system_fingerprint", "object", "usage", "id", "timings"], JsonShape.Keys(body));
        Assert.Equal("chat.completion", body.GetProperty("object").GetString());
        Assert.Matches("^b[0-9]+-[0-9a-z]+$", body.GetProperty("system_fingerprint").GetString());
        var choice = body.GetProperty("choices")[0];
        Assert.Equal(["finish_reason", "index", "message"], JsonShape.Keys(choice));
        Assert.Equal("Echo: Write a limerick about python exceptions", choice.GetProperty("message").GetProperty("content").GetString());
        var usage = body.GetProperty("usage");
        Assert.Equal(["completion_tokens", "prompt_tokens", "total_tokens", "prompt_tokens_details"], JsonShape.Keys(usage));
        var input = WireFixture.InputTokens(
            "You are ChatGPT, an AI assistant. Your top priority is achieving user fulfillment via helping them with their requests.",
            "Write a limerick about python exceptions");
        Assert.Equal(input, usage.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(7, usage.GetProperty("completion_tokens").GetInt32());
        var timings = body.GetProperty("timings");
        Assert.Equal(TimingKeys, JsonShape.Keys(timings));
        Assert.Equal(input, timings.GetProperty("prompt_n").GetInt32());
        Assert.Equal(7, timings.GetProperty("predicted_n").GetInt32());
    }

    [Fact]
    public async Task Model_is_echoed_loosely()
    {
        var named = await app.PostJsonAsync(LlamaCppPath, """{"model":"my-local","messages":[{"role":"user","content":"x"}]}""");
        var unnamed = await app.PostJsonAsync(LlamaCppPath, """{"messages":[{"role":"user","content":"x"}]}""");

        Assert.Equal("my-local", named.GetProperty("model").GetString());
        Assert.False(string.IsNullOrEmpty(unnamed.GetProperty("model").GetString()));
    }

    [Fact]
    public async Task Stream_without_include_usage_puts_timings_on_the_finish_chunk_and_sends_no_usage()
    {
        var events = await app.PostStreamAsync(LlamaCppPath, """{"stream":true,"messages":[{"role":"user","content":"a b"}]}""");

        Assert.All(events, e => Assert.Null(e.Event));
        Assert.Equal("[DONE]", events[^1].Data);
        var chunks = events[..^1].Select(e => e.Json).ToList();
        Assert.Equal(1 + 3 + 1, chunks.Count);
        Assert.Equal(ChunkKeys, JsonShape.Keys(chunks[0]));
        Assert.Equal("""{"role":"assistant","content":null}""", chunks[0].GetProperty("choices")[0].GetProperty("delta").GetRawText());
        Assert.Equal(["finish_reason", "index", "delta"], JsonShape.Keys(chunks[0].GetProperty("choices")[0]));
        Assert.Equal(" b", chunks[3].GetProperty("choices")[0].GetProperty("delta").GetProperty("content").GetString());
        var finish = chunks[^1];
        Assert.Equal("{}", finish.GetProperty("choices")[0].GetProperty("delta").GetRawText());
        Assert.Equal("stop", finish.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.Equal(TimingKeys, JsonShape.Keys(finish.GetProperty("timings")));
        Assert.All(chunks[..^1], c => Assert.False(c.TryGetProperty("timings", out _)));
        Assert.All(chunks, c => Assert.False(c.TryGetProperty("usage", out _)));
        Assert.All(chunks, c => Assert.Equal("chat.completion.chunk", c.GetProperty("object").GetString()));
    }

    [Fact]
    public async Task Stream_with_include_usage_ends_with_usage_and_timings_and_honours_max_tokens()
    {
        // llamacpp_request_stream_include_usage.json: max_tokens 10, include_usage, timings_per_token.
        var request = WireFixture.Text("llamacpp_request_stream_include_usage.json").Replace("\"test\"", "\"w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11\"");
        var events = await app.PostStreamAsync(LlamaCppPath, request);

        var chunks = events[..^1].Select(e => e.Json).ToList();
        var usageChunk = chunks[^1];
        Assert.Equal(0, usageChunk.GetProperty("choices").GetArrayLength());
        Assert.Equal(10, usageChunk.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Equal(10, usageChunk.GetProperty("timings").GetProperty("predicted_n").GetInt32());
        Assert.Equal("length", chunks[^2].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        // timings_per_token: every chunk carries timings.
        Assert.All(chunks, c => Assert.True(c.TryGetProperty("timings", out _)));
        Assert.Equal(10, chunks.Count(c => c.GetProperty("choices").GetArrayLength() > 0
            && c.GetProperty("choices")[0].GetProperty("delta").TryGetProperty("content", out var t) && t.ValueKind == JsonValueKind.String));
    }

    [Fact]
    public async Task Tool_call_answer_has_tool_calls_and_content_null()
    {
        var body = await app.PostJsonAsync(LlamaCppPath, WireFixture.Text("openai_chat_tools_request.json"));

        var message = body.GetProperty("choices")[0].GetProperty("message");
        Assert.Equal(JsonValueKind.Null, message.GetProperty("content").ValueKind);
        Assert.Equal("""{"location":"test"}""", message.GetProperty("tool_calls")[0].GetProperty("function").GetProperty("arguments").GetString());
        Assert.Equal("tool_calls", body.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
    }

    [Theory]
    [InlineData("llamacpp_request_response_format_json_schema.json", "\"foooooo\"")]
    [InlineData("llamacpp_request_response_format_json_object_schema.json", "\"42\"")]
    [InlineData("llamacpp_request_json_schema_toplevel.json", "\"42\"")]
    public async Task Schema_requests_are_accepted_and_answered_with_an_instance(string fixture, string instance)
    {
        var body = await app.PostJsonAsync(LlamaCppPath, WireFixture.Text(fixture));

        // The grammar the schema compiles to constrains llama.cpp's sampling: the answer is an instance (here, the const).
        Assert.Equal(instance, body.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
    }

    [Fact]
    public async Task Unknown_response_format_type_is_refused_in_the_llama_cpp_error_shape()
    {
        var body = await app.PostJsonAsync(LlamaCppPath, """{"response_format":{"type":"xml"},"messages":[{"role":"user","content":"x"}]}""", expectedStatus: 400);

        JsonShape.AssertMatches(WireFixture.Json("llamacpp_error_400_grammar.json"), body, exactKeys: true);
        Assert.Equal(400, body.GetProperty("error").GetProperty("code").GetInt32());
        Assert.Equal("invalid_request_error", body.GetProperty("error").GetProperty("type").GetString());
    }
}
