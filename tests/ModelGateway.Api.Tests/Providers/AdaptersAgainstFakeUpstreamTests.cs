using System.Text.Json.Nodes;
using ModelGateway.Api.Providers;
using ModelGateway.Api.Providers.Anthropic;
using ModelGateway.Api.Providers.LlamaCpp;
using ModelGateway.Api.Providers.OpenAICompatible;
using ModelGateway.Api.Tests.FakeUpstream;
using ModelGateway.Api.Tokenization;
using static ModelGateway.Api.Tests.Providers.ProviderTestKit;

namespace ModelGateway.Api.Tests.Providers;

/// <summary>
/// Each adapter over a real socket against the fake upstream, which validates requests as the providers do
/// (docs/fake-upstream.md): the request an adapter builds is accepted, and its answer comes back in OpenAI's shape.
/// </summary>
public sealed class AdaptersAgainstFakeUpstreamTests(FakeUpstreamApp fake) : IClassFixture<FakeUpstreamApp>
{
    private const string WeatherTool = """
        "tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"location":{"type":"string"}},"required":["location"]}}}]
        """;

    private async Task<ProviderResponse> SendAsync(string protocol, string request, string model = "fake-model")
    {
        var (adapter, target) = OnFake(fake, protocol, model);
        return await adapter.SendAsync(new ProviderCall(Request(request), target, fake.Invoker), TestContext.Current.CancellationToken);
    }

    [Theory]
    [InlineData("openai")]
    [InlineData("anthropic")]
    [InlineData("llamacpp")]
    public async Task Completion_echoes_with_usage(string protocol)
    {
        using var response = await SendAsync(protocol, """
            {"model":"alias","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hello big world"}]}
            """);

        var completion = Assert.IsType<ProviderCompletion>(response);
        Assert.Equal("Echo: Hello big world", completion.Completion["choices"]![0]!["message"]!["content"]!.GetValue<string>());
        Assert.Equal("stop", completion.FinishReason);
        // The system prompt reached the model: it is counted (the original gateway dropped it for Anthropic).
        Assert.Equal(WireFixture.InputTokens("Be brief.", "Hello big world"), completion.Usage.InputTokens);
        Assert.Equal(4, completion.Usage.OutputTokens);
        Assert.Equal("chat.completion", completion.Completion["object"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("openai")]
    [InlineData("anthropic")]
    [InlineData("llamacpp")]
    public async Task Stream_echoes_word_by_word_and_ends_with_usage(string protocol)
    {
        using var response = await SendAsync(protocol, """
            {"model":"alias","stream":true,"messages":[{"role":"user","content":"Hello big world"}]}
            """);
        var events = await ReadAllAsync(response);

        Assert.Equal("Echo: Hello big world", string.Concat(events.Select(e => e.ContentDelta)));
        Assert.Equal("stop", events.Single(e => e.FinishReason is not null).FinishReason);
        Assert.Equal(StreamEventKind.Usage, events[^1].Kind);
        Assert.Equal(4, events[^1].Usage!.Value.OutputTokens);
        Assert.All(events, e => Assert.Equal("chat.completion.chunk", Json(e)["object"]!.GetValue<string>()));
    }

    [Theory]
    [InlineData("openai")]
    [InlineData("anthropic")]
    [InlineData("llamacpp")]
    public async Task Tool_call_round_trip(string protocol)
    {
        using var first = await SendAsync(protocol, $$$"""
            {"model":"alias","messages":[{"role":"user","content":"Weather?"}],{{{WeatherTool}}}}
            """);
        var call = Assert.Single(Assert.IsType<ProviderCompletion>(first).Completion["choices"]![0]!["message"]!["tool_calls"]!.AsArray())!;
        Assert.Equal("tool_calls", ((ProviderCompletion)first).FinishReason);
        Assert.Equal("get_weather", call["function"]!["name"]!.GetValue<string>());
        AssertJsonEqual(JsonNode.Parse("""{"location":"test"}"""), JsonNode.Parse(call["function"]!["arguments"]!.GetValue<string>()));

        var followUp = new JsonObject
        {
            ["model"] = "alias",
            ["messages"] = new JsonArray(
                new JsonObject { ["role"] = "user", ["content"] = "Weather?" },
                new JsonObject { ["role"] = "assistant", ["content"] = null, ["tool_calls"] = new JsonArray(call.DeepClone()) },
                new JsonObject { ["role"] = "tool", ["tool_call_id"] = call["id"]!.DeepClone(), ["content"] = "sunny" }),
            ["tools"] = JsonNode.Parse("{" + WeatherTool + "}")!["tools"]!.DeepClone(),
        };
        using var second = await SendAsync(protocol, followUp.ToJsonString());
        Assert.Equal("Tool said: sunny", Assert.IsType<ProviderCompletion>(second).Completion["choices"]![0]!["message"]!["content"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("openai")]
    [InlineData("anthropic")]
    [InlineData("llamacpp")]
    public async Task Streamed_tool_call_arguments_arrive_whole(string protocol)
    {
        using var response = await SendAsync(protocol, $$$"""
            {"model":"alias","stream":true,"messages":[{"role":"user","content":"Weather?"}],{{{WeatherTool}}}}
            """);
        var events = await ReadAllAsync(response);

        AssertJsonEqual(JsonNode.Parse("""{"location":"test"}"""), JsonNode.Parse(string.Concat(events.Select(e => e.ContentDelta))));
        Assert.Equal("tool_calls", events.Single(e => e.FinishReason is not null).FinishReason);
    }

    [Theory]
    [InlineData("openai")]
    [InlineData("anthropic")]
    [InlineData("llamacpp")]
    public async Task Stop_sequences_and_max_tokens_are_honoured(string protocol)
    {
        using (var stopped = await SendAsync(protocol, """{"model":"alias","stop":[" big"],"messages":[{"role":"user","content":"Hello big world"}]}"""))
        {
            var completion = Assert.IsType<ProviderCompletion>(stopped);
            Assert.Equal("Echo: Hello", completion.Completion["choices"]![0]!["message"]!["content"]!.GetValue<string>());
            Assert.Equal("stop", completion.FinishReason);
        }
        using var capped = await SendAsync(protocol, """{"model":"alias","max_tokens":2,"messages":[{"role":"user","content":"Hello big world"}]}""");
        Assert.Equal("length", Assert.IsType<ProviderCompletion>(capped).FinishReason);
    }

    [Theory]
    [InlineData("openai", 429, 429, true)]
    [InlineData("anthropic", 429, 429, true)]
    [InlineData("llamacpp", 429, 429, true)]
    [InlineData("openai", 503, 502, true)]
    [InlineData("anthropic", 503, 502, true)]
    [InlineData("llamacpp", 503, 502, true)]
    [InlineData("anthropic", 400, 400, false)]
    [InlineData("anthropic", 401, 502, false)]
    public async Task Faults_become_failures(string protocol, int fault, int status, bool retryable)
    {
        using var response = await SendAsync(protocol, """{"model":"alias","messages":[{"role":"user","content":"hi"}]}""", $"fault-{fault}");

        var failure = Assert.IsType<ProviderFailure>(response);
        Assert.Equal(status, failure.StatusCode);
        Assert.Equal(retryable, failure.Retryable);
        if (fault == 429)
        {
            Assert.Equal(TimeSpan.FromSeconds(1), failure.RetryAfter);
        }
    }

    [Fact]
    public async Task Anthropic_stream_cut_mid_way_throws_after_the_chunks_it_got()
    {
        using var response = await SendAsync("anthropic", """{"model":"alias","stream":true,"messages":[{"role":"user","content":"one two three four five"}]}""",
            "fault-cut-stream@2");
        var seen = new List<StreamEvent>();

        await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            await foreach (var e in ((ProviderStream)response).ReadEventsAsync(TestContext.Current.CancellationToken))
            {
                seen.Add(e);
            }
        });
        Assert.Equal("Echo: one", string.Concat(seen.Select(e => e.ContentDelta)));
    }
}
