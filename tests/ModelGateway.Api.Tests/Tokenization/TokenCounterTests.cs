using System.Text.Json.Nodes;
using ModelGateway.Api.Tokenization;

namespace ModelGateway.Api.Tests.Tokenization;

public sealed class TokenCounterTests
{
    private static readonly TokenCounter Counter = new();

    [Fact]
    public void Counts_text_with_o200k_base()
    {
        Assert.Equal(0, Counter.CountText(""));
        // o200k_base: "Hello" and " world" are one token each.
        Assert.Equal(2, Counter.CountText("Hello world"));
        Assert.True(Counter.CountText(new string('x', 4000)) > 100);
    }

    [Fact]
    public void Messages_add_three_tokens_each_plus_three_for_the_reply()
    {
        var messages = new JsonArray(
            new JsonObject { ["role"] = "system", ["content"] = "Be brief." },
            new JsonObject { ["role"] = "user", ["content"] = new JsonArray(new JsonObject { ["type"] = "text", ["text"] = "Hello world" }) });

        var expected = 3 + (3 + Counter.CountText("system") + Counter.CountText("Be brief."))
                         + (3 + Counter.CountText("user") + Counter.CountText("Hello world"));
        Assert.Equal(expected, Counter.CountMessages(messages));
    }

    [Fact]
    public void Tool_calls_and_names_count()
    {
        var withCall = new JsonArray(new JsonObject
        {
            ["role"] = "assistant",
            ["name"] = "bot",
            ["content"] = null,
            ["tool_calls"] = new JsonArray(new JsonObject
            {
                ["id"] = "call_1",
                ["type"] = "function",
                ["function"] = new JsonObject { ["name"] = "get_weather", ["arguments"] = "{\"city\":\"Paris\"}" },
            }),
        });

        Assert.Equal(3 + 3 + Counter.CountText("assistant") + Counter.CountText("bot") + 1
                     + Counter.CountText("get_weather") + Counter.CountText("{\"city\":\"Paris\"}"), Counter.CountMessages(withCall));
    }

    [Fact]
    public async Task Is_safe_to_use_from_many_threads()
    {
        var text = string.Join(' ', Enumerable.Repeat("The quick brown fox jumps over the lazy dog.", 50));
        var expected = Counter.CountText(text);

        var counts = await Task.WhenAll(Enumerable.Range(0, 16).Select(_ => Task.Run(() => Counter.CountText(text), TestContext.Current.CancellationToken)));

        Assert.All(counts, c => Assert.Equal(expected, c));
    }
}
