using System.Net;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;
using ModelGateway.Api.Providers;
using ModelGateway.Api.Providers.Anthropic;
using ModelGateway.Api.Tests.FakeUpstream;
using static ModelGateway.Api.Tests.Providers.ProviderTestKit;

namespace ModelGateway.Api.Tests.Providers.Anthropic;

/// <summary>Non-streaming answers and error responses, from the recorded Anthropic payloads.</summary>
public sealed class AnthropicResponseTests
{
    private static readonly DateTimeOffset Now = new(2025, 1, 2, 3, 4, 5, TimeSpan.Zero);

    private static async Task<ProviderResponse> SendAsync(StubUpstream upstream, bool stream = false) =>
        await ProviderTestKit.SendAsync(new AnthropicAdapter(Options, new FakeTimeProvider(Now)),
            Request("""{"model":"chat-anthropic","stream":""" + (stream ? "true" : "false") + ""","messages":[{"role":"user","content":"hi"}]}"""),
            Target(ProviderTypes.Anthropic, "claude-sonnet-4-5"), upstream);

    [Fact]
    public async Task Text_message_becomes_a_chat_completion()
    {
        using var response = await SendAsync(StubUpstream.Fixture("anthropic_message_response.json"));

        var completion = Assert.IsType<ProviderCompletion>(response);
        AssertJsonEqual(JsonNode.Parse($$$"""
            {"id":"msg_01Egs18hRzhru3uGon3qesbA","object":"chat.completion","created":{{{Now.ToUnixTimeSeconds()}}},
             "model":"claude-sonnet-4-5-20250929",
             "choices":[{"index":0,"message":{"role":"assistant","content":"{\"product_name\": \"Green Tea\", \"price\": 5.50, \"quantity\": 2}","refusal":null},
               "logprobs":null,"finish_reason":"stop"}],
             "usage":{"prompt_tokens":249,"completion_tokens":26,"total_tokens":275}}
            """), completion.Completion);
        Assert.Equal(new TokenUsage(249, 26), completion.Usage);
        Assert.Equal("stop", completion.FinishReason);
    }

    [Fact]
    public async Task Tool_use_blocks_become_tool_calls_with_json_arguments()
    {
        using var response = await SendAsync(StubUpstream.Fixture("anthropic_message_tool_use_response.json"));

        var completion = Assert.IsType<ProviderCompletion>(response);
        var message = completion.Completion["choices"]![0]!["message"]!;
        Assert.Equal("I'll use the test_tool with the value \"test\" as requested, then provide a final response.",
            message["content"]!.GetValue<string>());
        var call = Assert.Single(message["tool_calls"]!.AsArray())!;
        Assert.Equal("toolu_011LF2VkWpAfJnTKJcmh1PNf", call["id"]!.GetValue<string>());
        Assert.Equal("function", call["type"]!.GetValue<string>());
        Assert.Equal("test_tool", call["function"]!["name"]!.GetValue<string>());
        AssertJsonEqual(JsonNode.Parse("""{"value":"test"}"""), JsonNode.Parse(call["function"]!["arguments"]!.GetValue<string>()));
        Assert.Equal("tool_calls", completion.FinishReason);
        Assert.Equal(415, completion.Usage.InputTokens);
        Assert.Equal(76, completion.Usage.OutputTokens);
    }

    [Fact]
    public async Task The_bytes_written_to_the_client_are_the_translation()
    {
        using var response = await SendAsync(StubUpstream.Fixture("anthropic_message_response.json"));

        // Written before anything asks for the object: the translation's own bytes go out.
        var written = await WrittenAsync(Assert.IsType<ProviderCompletion>(response));
        Assert.Equal("msg_01Egs18hRzhru3uGon3qesbA", written["id"]!.GetValue<string>());
        Assert.Equal("chat.completion", written["object"]!.GetValue<string>());
        Assert.Equal(Now.ToUnixTimeSeconds(), written["created"]!.GetValue<long>());
        Assert.Equal("{\"product_name\": \"Green Tea\", \"price\": 5.50, \"quantity\": 2}",
            written["choices"]![0]!["message"]!["content"]!.GetValue<string>());
        AssertJsonEqual(JsonNode.Parse("""{"prompt_tokens":249,"completion_tokens":26,"total_tokens":275}"""), written["usage"]);
    }

    [Fact]
    public async Task Blocks_are_read_in_any_field_order_and_what_has_no_openai_counterpart_is_left_out()
    {
        using var response = await SendAsync(StubUpstream.Json("""
            {"usage":{"output_tokens":7,"input_tokens":3,"server_tool_use":{"web_search_requests":1}},
             "content":[
               {"type":"thinking","thinking":"Let me see.","signature":"sig"},
               {"text":"Grüße, ","type":"text","citations":null},
               42,
               {"input":{"city":"Zürich","days":[1,2]},"name":"weather","id":"toolu_1","type":"tool_use"},
               {"type":"text","text":"und <tschüss> & \u00e9"},
               {"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{"query":"q"}},
               {"type":"tool_use","id":"toolu_2","name":"noop"}],
             "stop_reason":"tool_use","model":"claude-x","role":"assistant","type":"message","id":"msg_1"}
            """));

        var completion = Assert.IsType<ProviderCompletion>(response);
        var written = await WrittenAsync(completion);
        var message = written["choices"]![0]!["message"]!;
        Assert.Equal("Grüße, und <tschüss> & é", message["content"]!.GetValue<string>());
        var calls = message["tool_calls"]!.AsArray();
        Assert.Equal(2, calls.Count);
        Assert.Equal("toolu_1", calls[0]!["id"]!.GetValue<string>());
        Assert.Equal("weather", calls[0]!["function"]!["name"]!.GetValue<string>());
        AssertJsonEqual(JsonNode.Parse("""{"city":"Zürich","days":[1,2]}"""), JsonNode.Parse(calls[0]!["function"]!["arguments"]!.GetValue<string>()));
        Assert.Equal("{}", calls[1]!["function"]!["arguments"]!.GetValue<string>()); // a tool_use without input takes none
        Assert.Equal("tool_calls", written["choices"]![0]!["finish_reason"]!.GetValue<string>());
        Assert.Equal(("msg_1", "claude-x", "tool_calls"), (completion.Id, completion.Model, completion.FinishReason));
        Assert.Equal(new TokenUsage(3, 7), completion.Usage);
        // Text is written as UTF-8, not as \u escapes.
        Assert.True((await WrittenBytesAsync(completion)).AsSpan().IndexOf("Grüße"u8) >= 0);
    }

    [Fact]
    public async Task Fields_of_the_wrong_type_count_as_absent()
    {
        using var response = await SendAsync(StubUpstream.Json("""
            {"id":7,"model":null,"content":"not blocks","stop_reason":["end_turn"],"usage":{"input_tokens":"5","output_tokens":2.5}}
            """));

        var completion = Assert.IsType<ProviderCompletion>(response);
        AssertJsonEqual(JsonNode.Parse($$$"""
            {"id":null,"object":"chat.completion","created":{{{Now.ToUnixTimeSeconds()}}},"model":null,
             "choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":null},"logprobs":null,"finish_reason":null}],
             "usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}}
            """), await WrittenAsync(completion));
        Assert.Equal(default, completion.Usage);
    }

    [Theory]
    [InlineData("not json")]
    [InlineData("[1,2]")]
    [InlineData("{\"id\":\"msg_1\"} trailing")]
    [InlineData("{\"id\":\"msg_1\",\"content\":[{\"type\":\"text\"")]
    [InlineData("")]
    public async Task A_body_that_is_not_a_json_object_is_an_invalid_response_that_may_be_retried(string body)
    {
        using var response = await SendAsync(StubUpstream.Json(body));

        var failure = Assert.IsType<ProviderFailure>(response);
        Assert.Equal((502, "upstream_invalid_response", true), (failure.StatusCode, failure.Code, failure.Retryable));
    }

    [Fact]
    public async Task A_body_that_is_not_utf8_is_an_invalid_response()
    {
        byte[] body = [.. "{\"id\":\"msg_1\",\"content\":[{\"type\":\"text\",\"text\":\"a"u8, 0xC3, 0x28, .. "\"}]}"u8];
        using var response = await SendAsync(new StubUpstream(HttpStatusCode.OK, body, "application/json"));

        Assert.Equal("upstream_invalid_response", Assert.IsType<ProviderFailure>(response).Code);
    }

    private static async Task<byte[]> WrittenBytesAsync(ProviderCompletion completion)
    {
        using var stream = new MemoryStream();
        var writer = System.IO.Pipelines.PipeWriter.Create(stream);
        await completion.WriteToAsync(writer, CancellationToken.None);
        await writer.CompleteAsync();
        return stream.ToArray();
    }

    private static async Task<JsonNode> WrittenAsync(ProviderCompletion completion) => JsonNode.Parse(await WrittenBytesAsync(completion))!;

    [Fact]
    public async Task Cache_reads_and_writes_count_as_prompt_tokens_and_reads_as_cached()
    {
        var message = JsonNode.Parse(WireFixture.Text("anthropic_message_response.json"))!.AsObject();
        message["usage"]!["cache_read_input_tokens"] = 1000;
        message["usage"]!["cache_creation_input_tokens"] = 200;
        using var response = await SendAsync(StubUpstream.Json(message.ToJsonString()));

        var completion = Assert.IsType<ProviderCompletion>(response);
        Assert.Equal(new TokenUsage(249 + 1000 + 200, 26, 1000), completion.Usage);
        AssertJsonEqual(JsonNode.Parse("""{"prompt_tokens":1449,"completion_tokens":26,"total_tokens":1475,"prompt_tokens_details":{"cached_tokens":1000}}"""),
            completion.Completion["usage"]);
    }

    [Theory]
    [InlineData("end_turn", "stop")]
    [InlineData("stop_sequence", "stop")]
    [InlineData("max_tokens", "length")]
    [InlineData("tool_use", "tool_calls")]
    [InlineData("refusal", "content_filter")]
    [InlineData("pause_turn", "stop")]
    [InlineData("model_context_window_exceeded", "length")]
    public async Task Stop_reason_maps_to_finish_reason(string stopReason, string finishReason)
    {
        var message = JsonNode.Parse(WireFixture.Text("anthropic_message_response.json"))!.AsObject();
        message["stop_reason"] = stopReason;
        using var response = await SendAsync(StubUpstream.Json(message.ToJsonString()));

        Assert.Equal(finishReason, Assert.IsType<ProviderCompletion>(response).FinishReason);
    }

    [Fact]
    public async Task Not_found_is_an_invalid_request_that_is_not_retried()
    {
        using var response = await SendAsync(StubUpstream.Fixture("anthropic_error_not_found.json", HttpStatusCode.NotFound));

        var failure = Assert.IsType<ProviderFailure>(response);
        Assert.Equal(400, failure.StatusCode);
        Assert.Equal("invalid_request_error", failure.Type);
        Assert.False(failure.Retryable);
        Assert.Contains("not_found_error", failure.Message);
        Assert.Contains("The requested resource could not be found.", failure.Message);
    }

    [Fact]
    public async Task Rate_limit_is_retryable_and_keeps_retry_after()
    {
        var upstream = StubUpstream.Fixture("anthropic_error_rate_limit_429.json", HttpStatusCode.TooManyRequests);
        upstream.ResponseHeaders["retry-after"] = "7";
        using var response = await SendAsync(upstream, stream: true);

        var failure = Assert.IsType<ProviderFailure>(response);
        Assert.Equal(429, failure.StatusCode);
        Assert.Equal("rate_limit_error", failure.Type);
        Assert.True(failure.Retryable);
        Assert.Equal(TimeSpan.FromSeconds(7), failure.RetryAfter);
        Assert.Contains("rate limit", failure.Message);
    }

    [Fact]
    public async Task Overloaded_529_is_a_retryable_api_error()
    {
        using var response = await SendAsync(StubUpstream.Fixture("anthropic_error_overloaded_529.json", (HttpStatusCode)529));

        var failure = Assert.IsType<ProviderFailure>(response);
        Assert.Equal(502, failure.StatusCode);
        Assert.Equal("api_error", failure.Type);
        Assert.True(failure.Retryable);
        Assert.Equal("529", failure.ErrorType);
        Assert.Contains("Overloaded", failure.Message);
    }

    [Fact]
    public async Task Authentication_error_is_the_gateways_problem_not_the_clients()
    {
        using var response = await SendAsync(StubUpstream.Json(
            """{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}""", HttpStatusCode.Unauthorized));

        var failure = Assert.IsType<ProviderFailure>(response);
        Assert.Equal(502, failure.StatusCode);
        Assert.Equal("api_error", failure.Type);
        Assert.False(failure.Retryable);
    }
}
