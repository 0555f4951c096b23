using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using ModelGateway.Api.Tests.Support;

namespace ModelGateway.Api.Tests.Routing;

/// <summary>
/// Time-dependent routing: first-byte timeouts, the circuit breaker and its recovery, retry-after, and a client's
/// disconnect reaching the upstream (issue 3, "Routing"). Real time, kept short by <see cref="RoutingFixture"/>.
/// </summary>
public sealed class ResilienceTests(RoutingFixture fx) : IClassFixture<RoutingFixture>
{
    private static readonly object[] Hi = [new { role = "user", content = "hi" }];

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_first_token_slower_than_the_first_byte_timeout_moves_on_to_the_next_target()
    {
        var sw = Stopwatch.StartNew();
        using var response = await fx.Gateway.SendAsync(GatewayApp.Chat(new { model = "slow-first", messages = Hi }));
        var json = await GatewayApp.ReadJsonAsync(response);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("slow-ok", json.GetProperty("model").GetString());
        // The impatient provider allows 300 ms; the fake would have waited 3 s.
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(2), $"took {sw.Elapsed}");
        Assert.Equal(["fault-slow-first-token@3000", "slow-ok"], await fx.UpstreamModelsAsync("fault-slow-first-token@3000", "slow-ok"));
    }

    [Fact]
    public async Task A_target_that_keeps_failing_is_skipped_until_its_cooldown_ends()
    {
        const string failing = "fault-500@cooldown";

        // Two failures (CooldownAfterFailures) open the breaker; each request is still answered by the other target.
        for (var i = 0; i < 2; i++)
        {
            await AssertOkAsync("cooldown");
        }
        Assert.Equal(2, (await fx.UpstreamModelsAsync(failing)).Count);

        // Cooling down: the failing target is not even tried.
        for (var i = 0; i < 3; i++)
        {
            await AssertOkAsync("cooldown");
        }
        Assert.Equal(2, (await fx.UpstreamModelsAsync(failing)).Count);
        Assert.Equal(5, (await fx.UpstreamModelsAsync("cooldown-ok")).Count);

        // After the cooldown it is tried again (and, still failing, cooled down again at once).
        await Task.Delay(RoutingFixture.Cooldown + TimeSpan.FromMilliseconds(200), Ct);
        await AssertOkAsync("cooldown");
        await AssertOkAsync("cooldown");
        Assert.Equal(3, (await fx.UpstreamModelsAsync(failing)).Count);
    }

    [Fact]
    public async Task A_lone_target_that_heals_is_used_again_after_its_cooldown()
    {
        const string model = "fault-fail-first@2";
        for (var i = 0; i < 2; i++)
        {
            using var failed = await fx.Gateway.SendAsync(GatewayApp.Chat(new { model = "heals", messages = Hi }));
            Assert.Equal(HttpStatusCode.BadGateway, failed.StatusCode);
        }

        // Cooled down: refused at once without an upstream call, with a retry-after no longer than the cooldown.
        using (var cooling = await fx.Gateway.SendAsync(GatewayApp.Chat(new { model = "heals", messages = Hi })))
        {
            var json = await GatewayApp.ReadJsonAsync(cooling);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, cooling.StatusCode);
            Assert.Equal("upstream_unavailable", json.GetProperty("error").GetProperty("code").GetString());
            Assert.NotNull(cooling.Headers.RetryAfter?.Delta);
            Assert.InRange(cooling.Headers.RetryAfter!.Delta!.Value, TimeSpan.FromSeconds(1), RoutingFixture.Cooldown);
        }
        Assert.Equal(2, (await fx.UpstreamModelsAsync(model)).Count);

        await Task.Delay(RoutingFixture.Cooldown + TimeSpan.FromMilliseconds(200), Ct);
        await AssertOkAsync("heals");
        await AssertOkAsync("heals");
        Assert.Equal(4, (await fx.UpstreamModelsAsync(model)).Count);
    }

    [Fact]
    public async Task A_short_retry_after_is_waited_out_and_the_retry_succeeds()
    {
        var sw = Stopwatch.StartNew();
        await AssertOkAsync("retry-after-short");

        // The fake's 429 says retry-after: 1.
        Assert.True(sw.Elapsed >= TimeSpan.FromMilliseconds(950), $"retried after {sw.Elapsed}, before the retry-after");
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(3), $"took {sw.Elapsed}");
        Assert.Equal(2, (await fx.UpstreamModelsAsync("fault-429-first@1")).Count);
    }

    [Fact]
    public async Task A_retry_after_above_the_limit_is_returned_to_the_client_as_429()
    {
        var sw = Stopwatch.StartNew();
        using var response = await fx.Gateway.SendAsync(GatewayApp.Chat(new { model = "retry-after-long", messages = Hi }));
        var json = await GatewayApp.ReadJsonAsync(response);

        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        Assert.Equal("rate_limit_error", json.GetProperty("error").GetProperty("type").GetString());
        Assert.Equal(TimeSpan.FromSeconds(30), response.Headers.RetryAfter?.Delta);
        // Not waited out: 30 s is above MaxRetryAfterWait.
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(2), $"took {sw.Elapsed}");
        Assert.Single(await fx.UpstreamModelsAsync("fault-429@30"));

        // While the provider's retry-after runs the target is skipped, and the client is told how long is left.
        using var again = await fx.Gateway.SendAsync(GatewayApp.Chat(new { model = "retry-after-long", messages = Hi }));
        Assert.Equal(HttpStatusCode.TooManyRequests, again.StatusCode);
        Assert.InRange(again.Headers.RetryAfter?.Delta ?? TimeSpan.Zero, TimeSpan.FromSeconds(28), TimeSpan.FromSeconds(30));
        Assert.Single(await fx.UpstreamModelsAsync("fault-429@30"));
    }

    [Fact]
    public async Task A_client_that_disconnects_mid_stream_cancels_the_upstream_request_at_once()
    {
        const string model = "fault-slow-chunks@500";
        // A client of its own, as an application would have: a real socket, no resilience handler.
        using var client = new HttpClient(new SocketsHttpHandler()) { BaseAddress = fx.Gateway.Client.BaseAddress };
        var words = string.Join(' ', Enumerable.Range(1, 20).Select(i => "w" + i));
        using var request = GatewayApp.Chat(new { model = "slow-chunks", messages = new[] { new { role = "user", content = words } }, stream = true });
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var stream = await response.Content.ReadAsStreamAsync(Ct);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var line = await reader.ReadLineAsync(Ct);
        Assert.StartsWith("data: ", line);

        // Give up while waiting for the next chunk, as an SDK does when its caller's token is cancelled: the socket closes.
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            while (await reader.ReadLineAsync(cancel.Token) is not null)
            {
            }
        });
        var cancelledAt = DateTimeOffset.UtcNow;

        // Without cancellation the fake would stream for about 11 s (22 events, 500 ms apart).
        JsonElement upstream = default;
        for (var i = 0; i < 40; i++)
        {
            upstream = (await fx.UpstreamRequestsAsync(model)).Single();
            if (upstream.GetProperty("completed_at").ValueKind != JsonValueKind.Null)
            {
                break;
            }
            await Task.Delay(50, Ct);
        }
        Assert.True(upstream.GetProperty("aborted").GetBoolean(), upstream.ToString());
        var endedAfter = upstream.GetProperty("completed_at").GetDateTimeOffset() - cancelledAt;
        Assert.True(endedAfter < TimeSpan.FromMilliseconds(1500), $"the upstream request ended {endedAfter} after the client left");
    }

    private async Task AssertOkAsync(string alias)
    {
        using var response = await fx.Gateway.SendAsync(GatewayApp.Chat(new { model = alias, messages = Hi }));
        var body = await response.Content.ReadAsStringAsync(Ct);
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{alias}: HTTP {(int)response.StatusCode} {body}");
    }
}
