using System.Text;
using System.Text.Json;
using ModelGateway.Api.Providers;
using ModelGateway.Api.Providers.OpenAICompatible;

namespace ModelGateway.Api.Tests.Providers.OpenAICompatible;

/// <summary>The reader pass that classifies stream chunks instead of a DOM per chunk: odd but valid chunks read as before.</summary>
public sealed class ChunkScanTests
{
    private static StreamEvent Scan(string json) => ChunkScan.Read(Encoding.UTF8.GetBytes(json));

    [Fact]
    public void Content_then_arguments_per_choice_whatever_the_field_order()
    {
        var e = Scan("""
            {"id":"c","choices":[
              {"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\":"}},{"function":{"name":"f"}},{"function":{"arguments":"1}"}}],
                        "content":"Hi"},"finish_reason":"tool_calls"},
              {"delta":{"content":" there"},"finish_reason":null},
              7]}
            """);

        Assert.Equal(StreamEventKind.Chunk, e.Kind);
        Assert.Equal("Hi{\"a\":1} there", e.ContentDelta);
        Assert.Equal("tool_calls", e.FinishReason);
        Assert.Null(e.Usage);
    }

    [Fact]
    public void A_chunk_without_text_has_no_delta()
    {
        var e = Scan("""{"choices":[{"delta":{"role":"assistant","content":null}}]}""");

        Assert.Equal(StreamEventKind.Chunk, e.Kind);
        Assert.Null(e.ContentDelta);
        Assert.Null(e.FinishReason);
    }

    [Fact]
    public void Empty_content_is_text_and_later_arguments_join_it()
    {
        Assert.Equal("", Scan("""{"choices":[{"delta":{"content":""}}]}""").ContentDelta);
        Assert.Equal("{}", Scan("""{"choices":[{"delta":{"content":"","tool_calls":[{"function":{"arguments":"{"}},{"function":{"arguments":"}"}}]}}]}""").ContentDelta);
    }

    [Fact]
    public void Usage_only_chunk_carries_the_usage()
    {
        var e = Scan("""{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7,"prompt_tokens_details":{"cached_tokens":2}}}""");

        Assert.Equal(StreamEventKind.Usage, e.Kind);
        Assert.Equal(new TokenUsage(5, 7, 2), e.Usage!.Value);
    }

    [Theory]
    [InlineData("""{"id":"x"}""")]
    [InlineData("""{"choices":null,"usage":null}""")]
    [InlineData("""{"choices":{"0":{}}}""")]
    public void Without_choices_it_is_a_usage_event_without_usage(string json)
    {
        var e = Scan(json);

        Assert.Equal(StreamEventKind.Usage, e.Kind);
        Assert.Null(e.Usage);
    }

    [Fact]
    public void An_error_object_makes_an_error_event_and_a_string_error_does_not()
    {
        Assert.Equal(StreamEventKind.Error, Scan("""{"choices":[{"delta":{}}],"error":{"message":"boom"}}""").Kind);
        Assert.Equal(StreamEventKind.Chunk, Scan("""{"error":"none","choices":[{"delta":{}}]}""").Kind);
    }

    [Theory]
    [InlineData("[]")]
    [InlineData("{\"choices\":[")]
    [InlineData("{} {}")]
    public void What_is_not_one_json_object_throws(string json)
    {
        Assert.ThrowsAny<JsonException>(() => Scan(json));
    }
}
