using System.Text.Json.Nodes;
using ModelGateway.Realtime.Chat;

namespace ModelGateway.Realtime.Tests.Chat;

public sealed class ChatProtocolTests
{
    [Fact]
    public void Chunks_fold_into_a_chat_completion_with_usage_and_tool_calls()
    {
        var accumulator = new CompletionAccumulator();
        string[] chunks =
        [
            """{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}]}""",
            """{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":null}]}""",
            """{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":1,"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"t1","type":"function","function":{"name":"f","arguments":"{\"a\":"}}]},"finish_reason":null}]}""",
            """{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":1,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"1}"}}]},"finish_reason":"tool_calls"}]}""",
            """{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}""",
            """{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}""",
        ];
        foreach (var c in chunks)
        {
            accumulator.Add(JsonNode.Parse(c)!.AsObject());
        }
        var completion = accumulator.ToCompletion();
        Assert.Equal("chat.completion", (string?)completion["object"]);
        Assert.Equal("c1", (string?)completion["id"]);
        Assert.Equal("Hello", (string?)completion["choices"]![0]!["message"]!["content"]);
        Assert.Equal("stop", (string?)completion["choices"]![0]!["finish_reason"]);
        var call = completion["choices"]![1]!["message"]!["tool_calls"]![0]!;
        Assert.Equal(("t1", "f", "{\"a\":1}"), ((string?)call["id"], (string?)call["function"]!["name"], (string?)call["function"]!["arguments"]));
        Assert.Null(completion["choices"]![1]!["message"]!["content"]);
        Assert.Equal(5, (int)completion["usage"]!["total_tokens"]!);
    }

    [Fact]
    public void Channel_messages_carry_the_client_id_verbatim()
    {
        var chunk = JsonNode.Parse(ChannelMessages.Chunk("42", """{"object":"chat.completion.chunk"}"""))!;
        Assert.Equal(42, (int)chunk["id"]!);
        Assert.Equal("chunk", (string?)chunk["type"]);
        Assert.Equal("chat.completion.chunk", (string?)chunk["chunk"]!["object"]);

        var done = JsonNode.Parse(ChannelMessages.Completion("\"a\"", """{"object":"chat.completion"}"""))!;
        Assert.Equal(("a", "completion"), ((string?)done["id"], (string?)done["type"]));

        var error = JsonNode.Parse(ChannelMessages.Error("\"a\"", 429, "slow down", "rate_limit_exceeded", "rate_limit_exceeded"))!;
        Assert.Equal(429, (int)error["status"]!);
        Assert.Equal("slow down", (string?)error["error"]!["message"]);
        Assert.True(error["error"]!.AsObject().ContainsKey("param"));

        // An Api error envelope is lifted as is.
        var passed = JsonNode.Parse(ChannelMessages.Error("1", 402, """{"error":{"message":"budget","type":"insufficient_quota","param":null,"code":"budget_exceeded"}}"""))!;
        Assert.Equal("budget_exceeded", (string?)passed["error"]!["code"]);
    }

    [Fact]
    public void Token_bucket_allows_a_burst_then_the_rate()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        var bucket = new TokenBucket(2, 3, time);
        Assert.True(bucket.TryTake() && bucket.TryTake() && bucket.TryTake());
        Assert.False(bucket.TryTake());
        time.Advance(TimeSpan.FromMilliseconds(500));
        Assert.True(bucket.TryTake());
        Assert.False(bucket.TryTake());
    }
}
