using System.Net;
using System.Text.Json.Nodes;
using ModelGateway.Api.ChatCompletions;
using ModelGateway.Api.Providers;
using ModelGateway.Api.Providers.OpenAICompatible;
using ModelGateway.Api.Tests.FakeUpstream;
using static ModelGateway.Api.Tests.Providers.ProviderTestKit;

namespace ModelGateway.Api.Tests.Providers.OpenAICompatible;

/// <summary>The OpenAI-compatible adapter against OpenAI's recorded requests, answers and streams.</summary>
public sealed class OpenAICompatibleAdapterTests
{
    private const string UpstreamModel = "openai/gpt-4o-mini";

    private static async Task<ProviderResponse> SendAsync(ChatRequest request, StubUpstream upstream) =>
        await ProviderTestKit.SendAsync(new OpenAICompatibleAdapter(Options), request,
            Target(ProviderTypes.OpenAICompatible, UpstreamModel, baseUrl: "https://openrouter.test/api/v1/"), upstream);

    private static Task<ProviderResponse> SendAsync(string request, StubUpstream upstream) => SendAsync(Request(request), upstream);

    [Fact]
    public async Task Request_is_forwarded_with_the_model_rewritten()
    {
        var upstream = StubUpstream.Fixture("openai_chat_completion_response.json");
        using var response = await SendAsync(WireFixture.Text("openai_chat_tools_request.json"), upstream);

        Assert.Equal("https://openrouter.test/api/v1/chat/completions", upstream.Request!.RequestUri!.ToString());
        Assert.Equal("Bearer sk-upstream", upstream.Request.Headers.Authorization!.ToString());
        var expected = JsonNode.Parse(WireFixture.Text("openai_chat_tools_request.json"))!.AsObject();
        expected["model"] = UpstreamModel;
        AssertJsonEqual(expected, upstream.RequestBody);
    }

    [Fact]
    public async Task Unknown_fields_pass_through_and_gateway_only_fields_are_stripped_or_translated()
    {
        var upstream = StubUpstream.Fixture("openai_chat_completion_response.json");
        using var response = await SendAsync("""
            {"model":"chat-default","messages":[{"role":"user","content":"hi"}],"seed":7,"logit_bias":{"50256":-100},
             "provider":{"order":["openai"]},"response_schema":{"type":"object"},"coerce":true,"tenant":"other","repair":true}
            """, upstream);

        AssertJsonEqual(JsonNode.Parse($$$"""
            {"model":"{{{UpstreamModel}}}","messages":[{"role":"user","content":"hi"}],"seed":7,"logit_bias":{"50256":-100},
             "provider":{"order":["openai"]},
             "response_format":{"type":"json_schema","json_schema":{"name":"response","schema":{"type":"object"},"strict":false} } }
            """), upstream.RequestBody);
    }

    [Fact]
    public async Task Stream_always_asks_for_usage_and_keeps_other_stream_options()
    {
        var upstream = StubUpstream.Fixture("openai_chat_stream_text_usage.sse");
        using var response = await SendAsync("""
            {"model":"chat-default","stream":true,"stream_options":{"include_obfuscation":false},"messages":[{"role":"user","content":"hi"}]}
            """, upstream);

        AssertJsonEqual(JsonNode.Parse("""{"include_obfuscation":false,"include_usage":true}"""), upstream.RequestBody!["stream_options"]);
        Assert.Equal("text/event-stream", Assert.Single(upstream.Request!.Headers.Accept).MediaType);
    }

    [Fact]
    public async Task Output_cap_is_the_clamped_value_under_the_clients_name()
    {
        var request = Request("""{"model":"chat-default","max_completion_tokens":5000,"messages":[{"role":"user","content":"hi"}]}""");
        request.ClampMaxTokens(256);
        var upstream = StubUpstream.Fixture("openai_chat_completion_response.json");
        using var response = await SendAsync(request, upstream);

        Assert.Equal(256, upstream.RequestBody!["max_completion_tokens"]!.GetValue<int>());
        Assert.False(upstream.RequestBody.ContainsKey("max_tokens"));
    }

    [Fact]
    public async Task Completion_is_returned_as_sent_with_its_usage()
    {
        var body = JsonNode.Parse(WireFixture.Text("openai_chat_completion_response.json"))!.AsObject();
        body["usage"]!["prompt_tokens_details"]!["cached_tokens"] = 8;
        using var response = await SendAsync(WireFixture.Text("openai_chat_request.json"), StubUpstream.Json(body.ToJsonString()));

        var completion = Assert.IsType<ProviderCompletion>(response);
        AssertJsonEqual(body, completion.Completion);
        Assert.Equal(new TokenUsage(19, 10, 8), completion.Usage);
        Assert.Equal("stop", completion.FinishReason);
    }

    [Fact]
    public async Task Recorded_text_stream_ends_with_a_usage_event()
    {
        using var response = await SendAsync(WireFixture.Text("openai_chat_stream_text_request.json"),
            StubUpstream.Fixture("openai_chat_stream_text_usage.sse"));
        var events = await ReadAllAsync(response);

        var recorded = WireFixture.Stream("openai_chat_stream_text_usage.sse");
        Assert.Equal(recorded.Count - 1, events.Count); // all but [DONE]
        Assert.All(events.Take(events.Count - 1), e => Assert.Equal(StreamEventKind.Chunk, e.Kind));
        // Chunks are relayed byte for byte.
        Assert.Equal(recorded[1].Data, System.Text.Encoding.UTF8.GetString(events[1].Json.Span));
        Assert.Equal("stop", events[^2].FinishReason);
        var usage = events[^1];
        Assert.Equal(StreamEventKind.Usage, usage.Kind);
        Assert.Equal(new TokenUsage(14, 30), usage.Usage!.Value);
        var text = string.Concat(recorded.Take(recorded.Count - 2).Skip(1)
            .Select(e => e.Json.GetProperty("choices")[0].GetProperty("delta").TryGetProperty("content", out var c) ? c.GetString() : ""));
        Assert.Equal(text, string.Concat(events.Select(e => e.ContentDelta)));
    }

    [Fact]
    public async Task Recorded_tool_call_stream_counts_streamed_arguments()
    {
        using var response = await SendAsync(WireFixture.Text("openai_chat_stream_tool_call_request.json"),
            StubUpstream.Fixture("openai_chat_stream_tool_call.sse"));
        var events = await ReadAllAsync(response);

        var arguments = string.Concat(events.Select(e => e.ContentDelta));
        Assert.NotNull(JsonNode.Parse(arguments)!["city"]);
        Assert.Equal("tool_calls", events.Single(e => e.FinishReason is not null).FinishReason);
        Assert.Equal(new TokenUsage(48, 19), events[^1].Usage!.Value);
        Assert.Equal(StreamEventKind.Usage, events[^1].Kind);
    }

    [Fact]
    public async Task Error_chunk_mid_stream_is_an_error_event()
    {
        using var response = await SendAsync("""{"model":"chat-default","stream":true,"messages":[{"role":"user","content":"hi"}]}""",
            StubUpstream.Sse("data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n"));
        var events = await ReadAllAsync(response);

        Assert.Equal(StreamEventKind.Error, Assert.Single(events).Kind);
    }

    [Fact]
    public async Task Rate_limit_maps_the_envelope_and_reads_retry_after()
    {
        var upstream = StubUpstream.Json("""{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}""",
            HttpStatusCode.TooManyRequests);
        upstream.ResponseHeaders["retry-after"] = "3";
        using var response = await SendAsync("""{"model":"chat-default","messages":[{"role":"user","content":"hi"}]}""", upstream);

        var failure = Assert.IsType<ProviderFailure>(response);
        Assert.Equal(429, failure.StatusCode);
        Assert.Equal("rate_limit_error", failure.Type);
        Assert.True(failure.Retryable);
        Assert.Equal(TimeSpan.FromSeconds(3), failure.RetryAfter);
        Assert.Contains("Rate limit reached", failure.Message);
    }

    [Fact]
    public async Task Retry_after_ms_is_read_too()
    {
        var upstream = StubUpstream.Json("""{"error":{"message":"busy","type":"server_error","param":null,"code":null}}""",
            HttpStatusCode.ServiceUnavailable);
        upstream.ResponseHeaders["retry-after-ms"] = "1500";
        using var response = await SendAsync("""{"model":"chat-default","messages":[{"role":"user","content":"hi"}]}""", upstream);

        var failure = Assert.IsType<ProviderFailure>(response);
        Assert.Equal(502, failure.StatusCode);
        Assert.Equal("api_error", failure.Type);
        Assert.True(failure.Retryable);
        Assert.Equal(TimeSpan.FromMilliseconds(1500), failure.RetryAfter);
    }

    [Fact]
    public async Task Bad_request_is_not_retried()
    {
        using var response = await SendAsync("""{"model":"chat-default","messages":[{"role":"user","content":"hi"}]}""",
            StubUpstream.Json("""{"error":{"message":"Invalid 'messages'","type":"invalid_request_error","param":"messages","code":null}}""",
                HttpStatusCode.BadRequest));

        var failure = Assert.IsType<ProviderFailure>(response);
        Assert.Equal(400, failure.StatusCode);
        Assert.Equal("invalid_request_error", failure.Type);
        Assert.False(failure.Retryable);
    }

    [Fact]
    public async Task Invalid_json_answer_is_a_retryable_failure()
    {
        using var response = await SendAsync("""{"model":"chat-default","messages":[{"role":"user","content":"hi"}]}""", StubUpstream.Json("{not json"));

        var failure = Assert.IsType<ProviderFailure>(response);
        Assert.Equal("invalid_response", failure.ErrorType);
        Assert.True(failure.Retryable);
    }
}
