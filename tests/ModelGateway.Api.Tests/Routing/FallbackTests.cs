using System.Net;
using System.Text.Json;
using ModelGateway.Api.Tests.Support;

namespace ModelGateway.Api.Tests.Routing;

/// <summary>
/// Which targets a request reaches: the next target and then the fallback aliases before the first byte, weights,
/// the attempt bound, and no retry once a byte has reached the client (issue 3, "Routing").
/// </summary>
public sealed class FallbackTests(RoutingFixture fx) : IClassFixture<RoutingFixture>
{
    private static readonly object[] Hi = [new { role = "user", content = "hi" }];

    [Fact]
    public async Task A_target_answering_500_is_followed_by_the_next_target()
    {
        using var response = await fx.Gateway.SendAsync(GatewayApp.Chat(new { model = "next-target", messages = Hi }));
        var json = await GatewayApp.ReadJsonAsync(response);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("Echo: hi", json.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
        Assert.Equal(["fault-500@next", "next-ok"], await fx.UpstreamModelsAsync("fault-500@next", "next-ok"));
    }

    [Fact]
    public async Task When_every_target_of_an_alias_fails_its_fallback_alias_answers_streaming_too()
    {
        using var response = await fx.Gateway.SendAsync(GatewayApp.Chat(new { model = "fallback-primary", messages = Hi, stream = true }));
        var data = await GatewayApp.ReadSseDataAsync(response);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("[DONE]", data[^1]);
        var text = string.Concat(data[..^1].Select(d => JsonDocument.Parse(d).RootElement.GetProperty("choices")[0]
            .GetProperty("delta").TryGetProperty("content", out var c) ? c.GetString() : ""));
        Assert.Equal("Echo: hi", text);
        Assert.Equal(["fault-503@fallback", "fallback-ok"], await fx.UpstreamModelsAsync("fault-503@fallback", "fallback-ok"));
    }

    [Fact]
    public async Task Targets_are_chosen_in_proportion_to_their_weight_and_weight_0_never()
    {
        const int n = 200;
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        var gate = new SemaphoreSlim(8);
        var models = await Task.WhenAll(Enumerable.Range(0, n).Select(async _ =>
        {
            await gate.WaitAsync(TestContext.Current.CancellationToken);
            try
            {
                using var response = await fx.Gateway.SendAsync(GatewayApp.Chat(new { model = "weighted", messages = Hi }));
                var json = await GatewayApp.ReadJsonAsync(response);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                // The OpenAI-compatible adapter relays the upstream's own "model", which the fake echoes.
                return json.GetProperty("model").GetString()!;
            }
            finally
            {
                gate.Release();
            }
        }));
        foreach (var model in models)
        {
            counts[model] = counts.GetValueOrDefault(model) + 1;
        }

        // Weights 3:1 → 150 expected; binomial standard deviation ≈ 6.1, so ±30 is about five of them.
        Assert.InRange(counts.GetValueOrDefault("weight-3"), 120, 180);
        Assert.Equal(n, counts.GetValueOrDefault("weight-3") + counts.GetValueOrDefault("weight-1"));
        Assert.False(counts.ContainsKey("weight-0"));
    }

    [Fact]
    public async Task Attempts_are_bounded_by_max_attempts()
    {
        using var response = await fx.Gateway.SendAsync(GatewayApp.Chat(new { model = "bounded", messages = Hi }));
        var json = await GatewayApp.ReadJsonAsync(response);

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal("api_error", json.GetProperty("error").GetProperty("type").GetString());
        // Four failing targets, MaxAttempts 3: three distinct targets tried, the fourth never.
        var tried = await fx.UpstreamModelsAsync("fault-500@b1", "fault-500@b2", "fault-500@b3", "fault-503@b4");
        Assert.Equal(3, tried.Count);
        Assert.Equal(3, tried.Distinct().Count());
    }

    [Fact]
    public async Task A_stream_that_breaks_after_its_first_byte_is_not_retried()
    {
        using var response = await fx.Gateway.SendAsync(GatewayApp.Chat(new { model = "cut-then-ok", messages = new[] { new { role = "user", content = "one two three four" } }, stream = true }));
        var data = await GatewayApp.ReadSseDataAsync(response);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.DoesNotContain("[DONE]", data);
        var error = JsonDocument.Parse(data[^1]).RootElement.GetProperty("error");
        Assert.Equal("upstream_stream_error", error.GetProperty("code").GetString());
        // The chunks relayed before the cut: the role chunk and two content chunks.
        Assert.Equal(3, data.Count - 1);
        Assert.Equal(["fault-cut-stream@2"], await fx.UpstreamModelsAsync("fault-cut-stream@2", "cut-never"));
    }
}
