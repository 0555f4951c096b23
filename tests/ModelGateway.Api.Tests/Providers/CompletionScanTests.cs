using System.IO.Pipelines;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ModelGateway.Api.Providers;

namespace ModelGateway.Api.Tests.Providers;

/// <summary>
/// The one-pass scan of an OpenAI completion that lets the gateway relay the upstream bytes as they came: it must read what
/// the DOM reads did, treat fields of the wrong type as absent, and refuse what is not a JSON object.
/// </summary>
public sealed class CompletionScanTests
{
    private static CompletionScan Scan(string json) => CompletionScan.Read(Encoding.UTF8.GetBytes(json));

    [Fact]
    public void Reads_usage_id_model_and_the_first_finish_reason()
    {
        var scan = Scan("""
            {"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-mini",
             "choices":[{"index":0,"message":{"role":"assistant","content":"{\"usage\":1}"},"finish_reason":"length"},
                        {"index":1,"finish_reason":"stop"}],
             "usage":{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29,
                      "prompt_tokens_details":{"audio_tokens":0,"cached_tokens":8},"completion_tokens_details":{"reasoning_tokens":0}}}
            """);

        Assert.Equal(new TokenUsage(19, 10, 8), scan.Usage);
        Assert.Equal(("chatcmpl-1", "gpt-4o-mini", "length"), (scan.Id, scan.Model, scan.FinishReason));
    }

    [Fact]
    public void Usage_may_come_first_and_names_may_be_escaped()
    {
        var scan = Scan("""{"\u0075sage":{"completion_tokens":3,"prompt_tokens":2},"choices":[],"\u0069d":"x"}""");

        Assert.Equal(new TokenUsage(2, 3), scan.Usage);
        Assert.Equal("x", scan.Id);
        Assert.Null(scan.FinishReason);
    }

    [Theory]
    [InlineData("""{"choices":[]}""")]
    [InlineData("""{"usage":null}""")]
    [InlineData("""{"usage":[1,2]}""")]
    [InlineData("""{"usage":"many"}""")]
    public void Missing_or_malformed_usage_is_zero(string json)
    {
        var scan = Scan(json);

        Assert.Equal(default, scan.Usage);
    }

    [Fact]
    public void Counts_of_the_wrong_type_or_size_count_as_absent()
    {
        var scan = Scan("""
            {"usage":{"prompt_tokens":"12","completion_tokens":1.5,"prompt_tokens_details":[{"cached_tokens":4}],
                      "extra":{"deep":[{"a":[1,{"b":null}]}]}},
             "id":7,"model":null,"choices":[{"finish_reason":0}]}
            """);

        Assert.Equal(new TokenUsage(0, 0), scan.Usage);
        Assert.Equal((null, null, null), (scan.Id, scan.Model, scan.FinishReason));
        Assert.Equal(0, Scan("""{"usage":{"prompt_tokens":3000000000}}""").Usage.InputTokens);
    }

    [Fact]
    public void A_first_choice_that_is_not_an_object_gives_no_finish_reason()
    {
        Assert.Null(Scan("""{"choices":[null,{"finish_reason":"stop"}]}""").FinishReason);
        Assert.Null(Scan("""{"choices":{"finish_reason":"stop"}}""").FinishReason);
    }

    [Theory]
    [InlineData("{not json")]
    [InlineData("[]")]
    [InlineData("\"text\"")]
    [InlineData("")]
    [InlineData("""{"usage":{"prompt_tokens":1}""")]
    [InlineData("""{"id":"a"} {"id":"b"}""")]
    [InlineData("""{"id":"a",}""")]
    [InlineData("""{"choices":[{"finish_reason":"stop"]}""")]
    public void What_is_not_one_json_object_is_refused(string json)
    {
        Assert.ThrowsAny<JsonException>(() => Scan(json));
    }

    [Fact]
    public void Invalid_utf8_is_refused()
    {
        byte[] body = [.. "{\"id\":\""u8, 0xC3, 0x28, .. "\"}"u8];

        Assert.ThrowsAny<JsonException>(() => CompletionScan.Read(body));
    }

    [Fact]
    public void Nesting_deeper_than_the_parser_allows_is_refused_as_before()
    {
        var deep = "{\"x\":" + new string('[', 70) + new string(']', 70) + "}";

        Assert.ThrowsAny<JsonException>(() => Scan(deep));
        Assert.ThrowsAny<JsonException>(() => JsonNode.Parse(deep));
    }

    [Fact]
    public async Task An_untouched_answer_is_written_byte_for_byte()
    {
        var bytes = Encoding.UTF8.GetBytes("{\n  \"id\": \"a\",\n  \"choices\": [],\n  \"note\": \"caf\u00e9 \\u00e9\"\n}");
        using var completion = new ProviderCompletion(bytes, CompletionScan.Read(bytes));

        Assert.Equal(bytes, await WrittenAsync(completion));
    }

    [Fact]
    public async Task Once_the_object_is_asked_for_and_changed_the_change_is_written()
    {
        var bytes = """{"id":"a","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}"""u8.ToArray();
        using var completion = new ProviderCompletion(bytes, CompletionScan.Read(bytes));

        completion.Completion["id"] = "b";

        var written = JsonNode.Parse(await WrittenAsync(completion))!;
        Assert.Equal("b", written["id"]!.GetValue<string>());
        Assert.Equal(2, written["usage"]!["completion_tokens"]!.GetValue<int>());
    }

    private static async Task<byte[]> WrittenAsync(ProviderCompletion completion)
    {
        var pipe = new Pipe();
        await completion.WriteToAsync(pipe.Writer, CancellationToken.None);
        await pipe.Writer.CompleteAsync();
        using var output = new MemoryStream();
        await pipe.Reader.CopyToAsync(output);
        return output.ToArray();
    }
}
