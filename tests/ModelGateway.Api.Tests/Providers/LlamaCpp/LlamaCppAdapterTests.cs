using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using ModelGateway.Api.Providers;
using ModelGateway.Api.Providers.LlamaCpp;
using ModelGateway.Api.Tests.FakeUpstream;
using ModelGateway.Api.Tokenization;
using static ModelGateway.Api.Tests.Providers.ProviderTestKit;

namespace ModelGateway.Api.Tests.Providers.LlamaCpp;

/// <summary>
/// The llama.cpp adapter against the requests and errors of llama.cpp's README and tests, and answers shaped as its
/// server writes them (shared/wire/README.md, "llama.cpp"): usage and timings present or absent, a model name of its own.
/// </summary>
public sealed class LlamaCppAdapterTests
{
    private const string UpstreamModel = "qwen2.5-7b-instruct-q4";
    private static readonly TokenCounter Tokens = new();

    private static LlamaCppAdapter Adapter() => new(Options, Tokens);

    private static async Task<ProviderResponse> SendAsync(string request, StubUpstream upstream) =>
        await ProviderTestKit.SendAsync(Adapter(), Request(request), Target(ProviderTypes.LlamaCpp, UpstreamModel,
            baseUrl: "http://localhost:8081/", apiKey: null), upstream);

    private static string WithModel(string fixture)
    {
        var body = JsonNode.Parse(WireFixture.Text(fixture))!.AsObject();
        body["model"] = "chat-local";
        return body.ToJsonString();
    }

    /// <summary>The README's timings fields, on one line so they fit in an SSE data line.</summary>
    private const string Timings =
        "\"timings\":{\"cache_n\":3,\"prompt_n\":12,\"prompt_ms\":12.0,\"prompt_per_token_ms\":1.0,\"prompt_per_second\":1000.0," +
        "\"predicted_n\":4,\"predicted_ms\":80.0,\"predicted_per_token_ms\":20.0,\"predicted_per_second\":50.0}";

    private const string Usage = """
        "usage":{"completion_tokens":4,"prompt_tokens":15,"total_tokens":19,"prompt_tokens_details":{"cached_tokens":3}},
        """;

    private static string Completion(bool usage, bool timings) =>
        """
        {"choices":[{"finish_reason":"stop","index":0,"message":{"role":"assistant","content":"Echo: hello there friend"}}],
         "created":1727346168,"model":"gpt-3.5-turbo","system_fingerprint":"b6500-abc","object":"chat.completion",
        """ + (usage ? Usage : "") + "\"id\":\"chatcmpl-abc\"" + (timings ? "," + Timings : "") + "}";

    [Fact]
    public async Task Posts_to_the_servers_v1_chat_completions()
    {
        var upstream = StubUpstream.Json(Completion(usage: true, timings: true));
        using var response = await SendAsync(WithModel("llamacpp_chat_request.json"), upstream);

        Assert.Equal("http://localhost:8081/v1/chat/completions", upstream.Request!.RequestUri!.ToString());
        Assert.Null(upstream.Request.Headers.Authorization);
        var expected = JsonNode.Parse(WireFixture.Text("llamacpp_chat_request.json"))!.AsObject();
        expected["model"] = UpstreamModel;
        AssertJsonEqual(expected, upstream.RequestBody);
    }

    [Theory]
    [InlineData("llamacpp_request_response_format_json_schema.json")]
    [InlineData("llamacpp_request_response_format_json_object_schema.json")]
    [InlineData("llamacpp_request_json_schema_toplevel.json")]
    public async Task Response_format_and_json_schema_pass_through(string fixture)
    {
        var upstream = StubUpstream.Json(Completion(usage: true, timings: true));
        using var response = await SendAsync(WithModel(fixture), upstream);

        var expected = JsonNode.Parse(WireFixture.Text(fixture))!.AsObject();
        expected["model"] = UpstreamModel;
        AssertJsonEqual(expected, upstream.RequestBody);
    }

    [Fact]
    public async Task Stream_request_keeps_include_usage_and_llama_fields()
    {
        var upstream = StubUpstream.Sse("data: [DONE]\n\n");
        using var response = await SendAsync(WithModel("llamacpp_request_stream_include_usage.json"), upstream);

        var expected = JsonNode.Parse(WireFixture.Text("llamacpp_request_stream_include_usage.json"))!.AsObject();
        expected["model"] = UpstreamModel;
        AssertJsonEqual(expected, upstream.RequestBody);
    }

    [Fact]
    public async Task The_output_cap_is_sent_as_max_tokens()
    {
        var request = Request("""{"model":"chat-local","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":50}""");
        request.ClampMaxTokens(20);
        var upstream = StubUpstream.Json(Completion(usage: true, timings: false));
        using var response = await ProviderTestKit.SendAsync(Adapter(), request, Target(ProviderTypes.LlamaCpp, UpstreamModel), upstream);

        Assert.Equal(20, upstream.RequestBody!["max_tokens"]!.GetValue<int>());
        Assert.False(upstream.RequestBody.ContainsKey("max_completion_tokens"));
    }

    [Fact]
    public async Task Completion_reports_the_routes_model_and_the_servers_usage()
    {
        using var response = await SendAsync(WithModel("llamacpp_chat_request.json"), StubUpstream.Json(Completion(usage: true, timings: true)));

        var completion = Assert.IsType<ProviderCompletion>(response);
        Assert.Equal(UpstreamModel, completion.Completion["model"]!.GetValue<string>());
        Assert.Equal(new TokenUsage(15, 4, 3), completion.Usage);
        Assert.False(completion.Usage.Estimated);
        Assert.NotNull(completion.Completion["timings"]);
    }

    [Fact]
    public async Task Completion_without_usage_takes_the_counts_from_timings()
    {
        using var response = await SendAsync(WithModel("llamacpp_chat_request.json"), StubUpstream.Json(Completion(usage: false, timings: true)));

        var completion = Assert.IsType<ProviderCompletion>(response);
        Assert.Equal(new TokenUsage(15, 4, 3), completion.Usage);
        Assert.False(completion.Usage.Estimated);
        AssertJsonEqual(JsonNode.Parse("""{"prompt_tokens":15,"completion_tokens":4,"total_tokens":19,"prompt_tokens_details":{"cached_tokens":3}}"""),
            completion.Completion["usage"]);
    }

    [Fact]
    public async Task Completion_without_usage_or_timings_is_counted_with_the_tokenizer_and_marked_estimated()
    {
        var request = WithModel("llamacpp_chat_request.json");
        using var response = await SendAsync(request, StubUpstream.Json(Completion(usage: false, timings: false)));

        var completion = Assert.IsType<ProviderCompletion>(response);
        Assert.True(completion.Usage.Estimated);
        Assert.Equal(Tokens.CountMessages(Request(request).Messages), completion.Usage.InputTokens);
        Assert.Equal(Tokens.CountText("Echo: hello there friend"), completion.Usage.OutputTokens);
        Assert.True(completion.Usage.InputTokens > 20);
        Assert.Equal(completion.Usage.OutputTokens, completion.Completion["usage"]!["completion_tokens"]!.GetValue<int>());
    }

    /// <summary>A llama.cpp stream as server-task.cpp writes it; the last chunk carries the timings.</summary>
    private static string Stream(bool usageChunk, bool timings, bool toolCall = false)
    {
        var sse = new StringBuilder();
        void Chunk(string choices, string extra = "") => sse.Append("data: {\"choices\":").Append(choices)
            .Append(",\"created\":1727346168,\"id\":\"chatcmpl-llama\",\"model\":\"gpt-3.5-turbo\",\"system_fingerprint\":\"b6500-abc\",\"object\":\"chat.completion.chunk\"")
            .Append(extra).Append("}\n\n");
        Chunk("""[{"finish_reason":null,"index":0,"delta":{"role":"assistant","content":null}}]""");
        if (toolCall)
        {
            Chunk("""[{"finish_reason":null,"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]}}]""");
            Chunk("""[{"finish_reason":null,"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"location\":"}}]}}]""");
            Chunk("""[{"finish_reason":null,"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}}]""");
        }
        else
        {
            Chunk("""[{"finish_reason":null,"index":0,"delta":{"content":"Echo:"}}]""");
            Chunk("""[{"finish_reason":null,"index":0,"delta":{"content":" hello"}}]""");
        }
        Chunk("""[{"finish_reason":""" + (toolCall ? "\"tool_calls\"" : "\"stop\"") + ""","index":0,"delta":{}}]""",
            timings && !usageChunk ? "," + Timings : "");
        if (usageChunk)
        {
            Chunk("[]", ",\"usage\":{\"completion_tokens\":2,\"prompt_tokens\":9,\"total_tokens\":11}" + (timings ? "," + Timings : ""));
        }
        sse.Append("data: [DONE]\n\n");
        return sse.ToString();
    }

    private static async Task<List<StreamEvent>> StreamAsync(string sse)
    {
        using var response = await SendAsync("""{"model":"chat-local","stream":true,"messages":[{"role":"user","content":"hello"}]}""",
            StubUpstream.Sse(sse));
        return await ReadAllAsync(response);
    }

    [Fact]
    public async Task Stream_with_usage_chunk_passes_it_as_usage_and_adds_none()
    {
        var events = await StreamAsync(Stream(usageChunk: true, timings: true));

        Assert.Equal(5, events.Count);
        Assert.All(events, e => Assert.Equal(UpstreamModel, Json(e)["model"]!.GetValue<string>()));
        Assert.All(events, e => Assert.Equal("chatcmpl-llama", Json(e)["id"]!.GetValue<string>()));
        Assert.Equal("Echo: hello", string.Concat(events.Select(e => e.ContentDelta)));
        Assert.Equal("stop", events[3].FinishReason);
        Assert.Equal(StreamEventKind.Usage, events[4].Kind);
        Assert.Equal(new TokenUsage(9, 2), events[4].Usage!.Value);
    }

    [Fact]
    public async Task Stream_without_usage_chunk_gets_one_from_the_timings()
    {
        var events = await StreamAsync(Stream(usageChunk: false, timings: true));

        Assert.Equal(5, events.Count);
        var usage = events[^1];
        Assert.Equal(StreamEventKind.Usage, usage.Kind);
        Assert.Equal(new TokenUsage(15, 4, 3), usage.Usage!.Value);
        Assert.False(usage.Usage.Value.Estimated);
        var chunk = Json(usage);
        Assert.Equal("chatcmpl-llama", chunk["id"]!.GetValue<string>());
        Assert.Equal(1727346168, chunk["created"]!.GetValue<long>());
        Assert.Equal(UpstreamModel, chunk["model"]!.GetValue<string>());
        Assert.Equal("chat.completion.chunk", chunk["object"]!.GetValue<string>());
        Assert.Empty(chunk["choices"]!.AsArray());
        Assert.Equal(19, chunk["usage"]!["total_tokens"]!.GetValue<int>());
    }

    [Fact]
    public async Task Stream_without_usage_or_timings_is_estimated_with_the_tokenizer()
    {
        var events = await StreamAsync(Stream(usageChunk: false, timings: false));

        var usage = events[^1].Usage!.Value;
        Assert.Equal(StreamEventKind.Usage, events[^1].Kind);
        Assert.True(usage.Estimated);
        Assert.Equal(Tokens.CountText("Echo: hello"), usage.OutputTokens);
        Assert.Equal(Tokens.CountMessages(new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "hello" })), usage.InputTokens);
    }

    [Fact]
    public async Task Streamed_tool_call_arguments_are_counted_as_produced_text()
    {
        var events = await StreamAsync(Stream(usageChunk: false, timings: false, toolCall: true));

        Assert.Equal("{\"location\":\"Paris\"}", string.Concat(events.Select(e => e.ContentDelta)));
        Assert.Equal("tool_calls", events.Single(e => e.FinishReason is not null).FinishReason);
        Assert.Equal(Tokens.CountText("{\"location\":\"Paris\"}"), events[^1].Usage!.Value.OutputTokens);
    }

    [Theory]
    [InlineData("llamacpp_error_400_grammar.json", 400, 400, "invalid_request_error", false)]
    [InlineData("llamacpp_error_401.json", 401, 502, "api_error", false)]
    [InlineData("llamacpp_error_503_loading.json", 503, 502, "api_error", true)]
    public async Task Errors_map_to_openai_failures(string fixture, int upstreamStatus, int status, string type, bool retryable)
    {
        using var response = await SendAsync(WithModel("llamacpp_chat_request.json"), StubUpstream.Fixture(fixture, (HttpStatusCode)upstreamStatus));

        var failure = Assert.IsType<ProviderFailure>(response);
        Assert.Equal(status, failure.StatusCode);
        Assert.Equal(type, failure.Type);
        Assert.Equal(retryable, failure.Retryable);
        var message = JsonNode.Parse(WireFixture.Text(fixture))!["error"]!["message"]!.GetValue<string>();
        Assert.Contains(message, failure.Message);
    }
}
