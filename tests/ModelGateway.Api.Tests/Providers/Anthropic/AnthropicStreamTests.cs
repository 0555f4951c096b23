using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;
using ModelGateway.Api.Providers;
using ModelGateway.Api.Providers.Anthropic;
using ModelGateway.Api.Tests.FakeUpstream;
using static ModelGateway.Api.Tests.Providers.ProviderTestKit;

namespace ModelGateway.Api.Tests.Providers.Anthropic;

/// <summary>Every event of the recorded Anthropic streams, translated into OpenAI chunks.</summary>
public sealed class AnthropicStreamTests
{
    private static readonly DateTimeOffset Now = new(2025, 1, 2, 3, 4, 5, TimeSpan.Zero);

    private static async Task<List<StreamEvent>> TranslateAsync(StubUpstream upstream)
    {
        using var response = await SendAsync(new AnthropicAdapter(Options, new FakeTimeProvider(Now)),
            Request("""{"model":"chat-anthropic","stream":true,"messages":[{"role":"user","content":"hi"}]}"""),
            Target(ProviderTypes.Anthropic, "claude-sonnet-4-5"), upstream);
        return await ReadAllAsync(response);
    }

    private static Task<List<StreamEvent>> TranslateAsync(string fixture) => TranslateAsync(StubUpstream.Fixture(fixture));

    /// <summary>Every chunk is a chat.completion.chunk with the message's id and model and one created time.</summary>
    private static void AssertEnvelopes(List<StreamEvent> events, string id, string model)
    {
        foreach (var e in events.Where(e => e.Kind != StreamEventKind.Error))
        {
            var chunk = Json(e);
            Assert.Equal(id, chunk["id"]!.GetValue<string>());
            Assert.Equal("chat.completion.chunk", chunk["object"]!.GetValue<string>());
            Assert.Equal(Now.ToUnixTimeSeconds(), chunk["created"]!.GetValue<long>());
            Assert.Equal(model, chunk["model"]!.GetValue<string>());
        }
    }

    private static JsonNode? Delta(StreamEvent e) => Json(e)["choices"]![0]!["delta"];

    [Fact]
    public async Task Text_stream_translates_every_event()
    {
        var events = await TranslateAsync("anthropic_stream_text.sse");

        // message_start, 2 × text_delta, message_delta, message_stop; block start/stop and ping carry nothing.
        Assert.Equal(5, events.Count);
        AssertEnvelopes(events, "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY", "claude-sonnet-4-5-20250929");

        AssertJsonEqual(JsonNode.Parse("""{"role":"assistant","content":""}"""), Delta(events[0]));
        Assert.Null(Json(events[0])["choices"]![0]!["finish_reason"]);
        Assert.Equal("Hello", Delta(events[1])!["content"]!.GetValue<string>());
        Assert.Equal("Hello", events[1].ContentDelta);
        Assert.Equal("!", events[2].ContentDelta);

        var finish = events[3];
        Assert.Equal(StreamEventKind.Chunk, finish.Kind);
        Assert.Equal("stop", finish.FinishReason);
        Assert.Equal("stop", Json(finish)["choices"]![0]!["finish_reason"]!.GetValue<string>());
        AssertJsonEqual(new JsonObject(), Delta(finish));
        Assert.Equal(new TokenUsage(25, 15), finish.Usage!.Value);

        var usage = events[4];
        Assert.Equal(StreamEventKind.Usage, usage.Kind);
        Assert.Equal(new TokenUsage(25, 15), usage.Usage!.Value);
        var usageChunk = Json(usage);
        Assert.Empty(usageChunk["choices"]!.AsArray());
        AssertJsonEqual(JsonNode.Parse("""{"prompt_tokens":25,"completion_tokens":15,"total_tokens":40}"""), usageChunk["usage"]);
    }

    [Fact]
    public async Task Recorded_stream_with_cache_fields_and_padded_data_lines()
    {
        var events = await TranslateAsync("anthropic_stream_text_recorded.sse");

        Assert.Equal(7, events.Count);
        AssertEnvelopes(events, "msg_013nnniYDrJDocdy5nrMU7cH", "claude-sonnet-4-5-20250929");
        Assert.Equal("[12345,67890]", string.Concat(events.Select(e => e.ContentDelta)));
        Assert.Equal("stop", events[5].FinishReason);
        var usage = events[6].Usage!.Value;
        Assert.Equal(new TokenUsage(135, 10, 0), usage);
    }

    [Fact]
    public async Task Tool_use_stream_gives_text_then_a_tool_call_with_streamed_arguments()
    {
        var events = await TranslateAsync("anthropic_stream_tool_use.sse");

        // role + 13 text deltas + tool start + 8 non-empty argument fragments + finish + usage
        Assert.Equal(1 + 13 + 1 + 8 + 1 + 1, events.Count);
        AssertEnvelopes(events, "msg_014p7gG3wDgGV9EUtLvnow3U", "claude-sonnet-4-5-20250929");
        Assert.Equal("Okay, let's check the weather for San Francisco, CA:",
            string.Concat(events.Skip(1).Take(13).Select(e => Delta(e)!["content"]!.GetValue<string>())));

        var start = Delta(events[14])!["tool_calls"]![0]!;
        AssertJsonEqual(JsonNode.Parse("""
            {"index":0,"id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","type":"function","function":{"name":"get_weather","arguments":""}}
            """), start);

        var fragments = events.Skip(15).Take(8).Select(e => Delta(e)!["tool_calls"]![0]!).ToList();
        Assert.All(fragments, f => Assert.Equal(0, f["index"]!.GetValue<int>()));
        Assert.All(fragments, f => Assert.Null(f["id"]));
        var arguments = string.Concat(fragments.Select(f => f["function"]!["arguments"]!.GetValue<string>()));
        AssertJsonEqual(JsonNode.Parse("""{"location":"San Francisco, CA","unit":"fahrenheit"}"""), JsonNode.Parse(arguments));
        Assert.Equal(arguments, string.Concat(events.Skip(15).Take(8).Select(e => e.ContentDelta)));

        Assert.Equal("tool_calls", events[23].FinishReason);
        Assert.Equal(StreamEventKind.Usage, events[24].Kind);
        Assert.Equal(new TokenUsage(472, 89), events[24].Usage!.Value);
    }

    [Fact]
    public async Task Sdk_tool_use_fixture_with_caller_field()
    {
        var events = await TranslateAsync("anthropic_stream_tool_use_sdk_fixture.sse");

        AssertEnvelopes(events, "msg_019Q1hrJbZG26Fb9BQhrkHEr", "claude-sonnet-4-20250514");
        var toolChunks = events.Where(e => e.Kind == StreamEventKind.Chunk && Delta(e)?["tool_calls"] is not null).ToList();
        Assert.Equal("toolu_01NRLabsLyVHZPKxbKvkfSMn", Delta(toolChunks[0])!["tool_calls"]![0]!["id"]!.GetValue<string>());
        var arguments = string.Concat(toolChunks.Select(e => Delta(e)!["tool_calls"]![0]!["function"]!["arguments"]!.GetValue<string>()));
        AssertJsonEqual(JsonNode.Parse("""{"location":"Paris"}"""), JsonNode.Parse(arguments));
        Assert.Equal("tool_calls", events.Single(e => e.FinishReason is not null).FinishReason);
        Assert.Equal(new TokenUsage(377, 65), events[^1].Usage!.Value);
    }

    [Fact]
    public async Task Second_tool_call_gets_the_next_index()
    {
        var sse = new StringBuilder();
        void Event(string type, string data) => sse.Append("event: ").Append(type).Append("\ndata: ").Append(data).Append("\n\n");
        Event("message_start", """{"type":"message_start","message":{"id":"msg_x","type":"message","role":"assistant","model":"claude-x","content":[],"usage":{"input_tokens":10,"cache_read_input_tokens":4,"cache_creation_input_tokens":2,"output_tokens":1}}}""");
        Event("content_block_start", """{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_a","name":"f","input":{}}}""");
        Event("content_block_delta", """{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{}"}}""");
        Event("content_block_stop", """{"type":"content_block_stop","index":0}""");
        Event("content_block_start", """{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_b","name":"g","input":{}}}""");
        Event("content_block_delta", """{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\":1}"}}""");
        Event("content_block_stop", """{"type":"content_block_stop","index":1}""");
        Event("message_delta", """{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":20}}""");
        Event("message_stop", """{"type":"message_stop"}""");

        var events = await TranslateAsync(StubUpstream.Sse(sse.ToString()));

        Assert.Equal(0, Delta(events[1])!["tool_calls"]![0]!["index"]!.GetValue<int>());
        Assert.Equal(0, Delta(events[2])!["tool_calls"]![0]!["index"]!.GetValue<int>());
        Assert.Equal("toolu_b", Delta(events[3])!["tool_calls"]![0]!["id"]!.GetValue<string>());
        Assert.Equal(1, Delta(events[3])!["tool_calls"]![0]!["index"]!.GetValue<int>());
        Assert.Equal(1, Delta(events[4])!["tool_calls"]![0]!["index"]!.GetValue<int>());
        // Usage combines message_start's input and cache counts with message_delta's output.
        Assert.Equal(new TokenUsage(16, 20, 4), events[^1].Usage!.Value);
        AssertJsonEqual(JsonNode.Parse("""{"prompt_tokens":16,"completion_tokens":20,"total_tokens":36,"prompt_tokens_details":{"cached_tokens":4}}"""),
            Json(events[^1])["usage"]);
    }

    [Fact]
    public async Task Stop_sequence_ends_with_stop()
    {
        var sse = WireFixture.Text("anthropic_stream_text.sse")
            .Replace("\"stop_reason\": \"end_turn\", \"stop_sequence\":null", "\"stop_reason\": \"stop_sequence\", \"stop_sequence\":\"!\"");
        Assert.Contains("stop_sequence\", \"stop_sequence\":\"!\"", sse);

        var events = await TranslateAsync(StubUpstream.Sse(sse));

        Assert.Equal("stop", events[3].FinishReason);
    }

    [Fact]
    public async Task Error_event_becomes_an_openai_error_envelope_and_ends_the_stream()
    {
        var events = await TranslateAsync("anthropic_stream_error_event.sse");

        var e = Assert.Single(events);
        Assert.Equal(StreamEventKind.Error, e.Kind);
        var error = Json(e)["error"]!;
        Assert.Equal("api_error", error["type"]!.GetValue<string>());
        Assert.Equal("overloaded_error", error["code"]!.GetValue<string>());
        Assert.Contains("Overloaded", error["message"]!.GetValue<string>());
        Assert.True(error.AsObject().ContainsKey("param"));
    }

    [Fact]
    public async Task Error_mid_stream_follows_the_chunks_already_sent()
    {
        var text = WireFixture.Text("anthropic_stream_text.sse");
        var cut = text[..text.IndexOf("event: content_block_stop", StringComparison.Ordinal)] + WireFixture.Text("anthropic_stream_error_event.sse");

        var events = await TranslateAsync(StubUpstream.Sse(cut));

        Assert.Equal([StreamEventKind.Chunk, StreamEventKind.Chunk, StreamEventKind.Chunk, StreamEventKind.Error], events.Select(e => e.Kind));
    }

    [Fact]
    public async Task Stream_ending_before_message_stop_is_a_broken_stream()
    {
        var text = WireFixture.Text("anthropic_stream_text.sse");
        var cut = text[..text.IndexOf("event: message_stop", StringComparison.Ordinal)];

        using var response = await SendAsync(new AnthropicAdapter(Options, TimeProvider.System),
            Request("""{"model":"chat-anthropic","stream":true,"messages":[{"role":"user","content":"hi"}]}"""),
            Target(ProviderTypes.Anthropic, "m"), StubUpstream.Sse(cut));
        var seen = new List<StreamEvent>();
        await Assert.ThrowsAsync<IOException>(async () =>
        {
            await foreach (var e in ((ProviderStream)response).ReadEventsAsync(TestContext.Current.CancellationToken))
            {
                seen.Add(e);
            }
        });
        // What came before the cut was delivered, including the finish chunk's usage for billing.
        Assert.Equal(4, seen.Count);
        Assert.Equal(15, seen[^1].Usage!.Value.OutputTokens);
    }
}
