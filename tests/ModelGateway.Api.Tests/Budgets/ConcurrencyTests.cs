using System.Net;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using ModelGateway.Api.Budgets;
using ModelGateway.Api.Providers;
using ModelGateway.Api.Tenancy;
using ModelGateway.Api.Tests.Support;

namespace ModelGateway.Api.Tests.Budgets;

public sealed class TwoReplicas : BudgetCluster
{
    public const string SharedKey = "sk-shared-0123456789";
    public const string RateKey = "sk-ratelimited-0123456789";
    public const string TokenKey = "sk-tpm-0123456789abc";
    public const string DailyKey = "sk-daily-0123456789ab";
    public const string FlushKey = "sk-flush-0123456789ab";
    public const string CutKey = "sk-cut-0123456789abcd";
    public const string ReregKey = "sk-rereg-0123456789a";

    /// <summary>Actual cost of one request below: 6 input and 3 output tokens (the fake's count) = 120 µ$; ~100 fit.</summary>
    public const long SharedBudgetMicro = 12_000;
    public const long FlushBudgetMicro = 7_200;

    protected override IEnumerable<KeyValuePair<string, string?>> Tenants => new Dictionary<string, string?>
    {
        ["Tenancy:Seed:1:Id"] = "shared",
        ["Tenancy:Seed:1:ApiKeys:0"] = SharedKey,
        ["Tenancy:Seed:1:BudgetUsd"] = "0.012",
        ["Tenancy:Seed:2:Id"] = "ratelimited",
        ["Tenancy:Seed:2:ApiKeys:0"] = RateKey,
        ["Tenancy:Seed:2:RequestsPerMinute"] = "10",
        ["Tenancy:Seed:3:Id"] = "tpm",
        ["Tenancy:Seed:3:ApiKeys:0"] = TokenKey,
        ["Tenancy:Seed:3:TokensPerMinute"] = "100",
        ["Tenancy:Seed:4:Id"] = "daily",
        ["Tenancy:Seed:4:ApiKeys:0"] = DailyKey,
        ["Tenancy:Seed:4:BudgetUsd"] = "0.0005",
        ["Tenancy:Seed:4:BudgetPeriod"] = "daily",
        ["Tenancy:Seed:5:Id"] = "flush",
        ["Tenancy:Seed:5:ApiKeys:0"] = FlushKey,
        ["Tenancy:Seed:5:BudgetUsd"] = "0.0072",
        ["Tenancy:Seed:6:Id"] = "cut",
        ["Tenancy:Seed:6:ApiKeys:0"] = CutKey,
        ["Tenancy:Seed:6:BudgetUsd"] = "1",
        ["Tenancy:Seed:7:Id"] = "rereg",
        ["Tenancy:Seed:7:ApiKeys:0"] = ReregKey,
        ["Tenancy:Seed:7:BudgetUsd"] = "1000",
        // Hundreds of concurrent streams over two replicas and one fake, on a busy CI machine: the fake's first byte may take
        // longer than the usual 2 s (a full-suite run once timed three out, opening the circuit for the rest), as for TraceCluster.
        ["Gateway:Providers:openrouter:FirstByteTimeout"] = "00:00:15",
    };
}

/// <summary>Issue 4's key test: budgets and rate limits exact across two replicas sharing Redis and Postgres.</summary>
public sealed class ConcurrencyTests(TwoReplicas cluster) : IClassFixture<TwoReplicas>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Three_hundred_concurrent_streams_over_two_replicas_never_overshoot_and_ledger_equals_redis_equals_upstream()
    {
        await cluster.Fake.Client.PostAsync("/_fake/reset", null, Ct);
        var tasks = Enumerable.Range(0, 300).Select(i => SendStreamAsync(i % 2 == 0 ? cluster.A : cluster.B, TwoReplicas.SharedKey, $"request {i:000}"));
        var results = await Task.WhenAll(tasks);

        var ok = results.Count(r => r.Status == 200);
        var refused = results.Where(r => r.Status != 200).ToList();
        Assert.All(refused, r =>
        {
            Assert.Equal(429, r.Status);
            Assert.Equal("insufficient_quota", r.Type);
            Assert.Equal("budget_exceeded", r.Code);
            Assert.NotNull(r.RetryAfter);
        });
        Assert.All(results.Where(r => r.Status == 200), r => Assert.True(r.Done, "every admitted stream completed with [DONE]"));
        // Refusals while reservations were in flight say "retry in a second"; then drain what the burst left, one at a time,
        // until the remaining budget is below one request's worst case.
        var burst = ok;
        for (var i = 0; i < 200; i++)
        {
            var r = await SendStreamAsync(i % 2 == 0 ? cluster.A : cluster.B, TwoReplicas.SharedKey, $"request {i:000}");
            if (r.Status != 200)
            {
                Assert.Equal("budget_exceeded", r.Code);
                break;
            }
            ok++;
        }

        var (rows, ledgerCost) = await cluster.LedgerAsync("shared", ok);
        var redisSpent = await cluster.RedisSpentAsync("shared", "total");
        var (input, output) = await cluster.FakeUsageAsync();
        var upstreamCost = input * BudgetCluster.InputMicroPerToken + output * BudgetCluster.OutputMicroPerToken;
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"burst ok={burst} refused={refused.Count}, total ok={ok} ledger={ledgerCost} redis={redisSpent} upstream={upstreamCost} budget={TwoReplicas.SharedBudgetMicro}");

        Assert.Equal(ok, rows);
        Assert.True(ledgerCost <= TwoReplicas.SharedBudgetMicro, $"overshoot: {ledgerCost} > {TwoReplicas.SharedBudgetMicro}");
        // Used up: what is left is less than one request's worst case (~280 µ$ here).
        Assert.True(TwoReplicas.SharedBudgetMicro - ledgerCost < 400, $"budget left unused: {TwoReplicas.SharedBudgetMicro - ledgerCost}");
        Assert.Equal(ledgerCost, redisSpent);
        Assert.Equal(upstreamCost, ledgerCost);
        Assert.Equal(ok, await cluster.ScalarAsync<long>("SELECT count(*) FROM usage_ledger WHERE tenant_id = 'shared' AND status = 'ok' AND NOT usage_estimated"));
    }

    [Fact]
    public async Task Requests_per_minute_hold_across_both_replicas_and_reset_with_the_window()
    {
        var results = await Task.WhenAll(Enumerable.Range(0, 30).Select(i =>
            SendStreamAsync(i % 2 == 0 ? cluster.A : cluster.B, TwoReplicas.RateKey, "hello", model: "chat-default")));
        Assert.Equal(10, results.Count(r => r.Status == 200));
        var refused = results.Where(r => r.Status != 200).ToList();
        Assert.Equal(20, refused.Count);
        Assert.All(refused, r =>
        {
            Assert.Equal(429, r.Status);
            Assert.Equal("rate_limit_error", r.Type);
            Assert.Equal("rate_limit_exceeded", r.Code);
            Assert.Equal("10", r.Headers["x-ratelimit-limit-requests"]);
            Assert.Equal("0", r.Headers["x-ratelimit-remaining-requests"]);
            Assert.Equal("55s", r.Headers["x-ratelimit-reset-requests"]); // the clock stands at hh:mm:05
            Assert.Equal("55", r.RetryAfter);
        });

        cluster.Time.Advance(TimeSpan.FromMinutes(1));
        var next = await SendStreamAsync(cluster.B, TwoReplicas.RateKey, "hello again", model: "chat-default");
        Assert.Equal(200, next.Status);
        Assert.Equal("9", next.Headers["x-ratelimit-remaining-requests"]);
    }

    [Fact]
    public async Task Tokens_per_minute_refuse_with_the_tokens_headers()
    {
        Result? refused = null;
        for (var i = 0; i < 30 && refused is null; i++)
        {
            var r = await SendStreamAsync(i % 2 == 0 ? cluster.A : cluster.B, TwoReplicas.TokenKey, "count my tokens please");
            if (r.Status != 200)
            {
                refused = r;
            }
        }
        Assert.NotNull(refused);
        Assert.Equal(429, refused.Status);
        Assert.Equal("rate_limit_exceeded", refused.Code);
        Assert.Equal("100", refused.Headers["x-ratelimit-limit-tokens"]);
        Assert.True(refused.Headers.ContainsKey("x-ratelimit-remaining-tokens"));
        Assert.True(refused.Headers.ContainsKey("x-ratelimit-reset-tokens"));
        cluster.Time.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal(200, (await SendStreamAsync(cluster.A, TwoReplicas.TokenKey, "count my tokens please")).Status);
    }

    [Fact]
    public async Task A_daily_budget_refuses_until_the_next_day_then_admits_again()
    {
        var admitted = 0;
        Result? refused = null;
        for (var i = 0; i < 20 && refused is null; i++)
        {
            var r = await SendStreamAsync(i % 2 == 0 ? cluster.A : cluster.B, TwoReplicas.DailyKey, $"day one {i}");
            if (r.Status == 200)
            {
                admitted++;
            }
            else if (r.RetryAfter == "1")
            {
                // Refused for a reservation still held: the last request's settlement, sent by the other replica on its own
                // connection to Redis, can arrive after this request's admission. A client retries after the second it is told.
                await Task.Delay(1_000, Ct);
            }
            else
            {
                refused = r;
            }
        }
        Assert.InRange(admitted, 1, 4);
        Assert.NotNull(refused);
        Assert.Equal("budget_exceeded", refused.Code);
        // Over the budget itself (not just reservations in flight): retry when the day ends.
        var secondsToMidnight = (long)(cluster.Time.GetUtcNow().Date.AddDays(1) - cluster.Time.GetUtcNow().UtcDateTime).TotalSeconds;
        Assert.InRange(long.Parse(refused.RetryAfter!, System.Globalization.CultureInfo.InvariantCulture), secondsToMidnight - 1, secondsToMidnight + 1);

        cluster.Time.Advance(TimeSpan.FromDays(1));
        Assert.Equal(200, (await SendStreamAsync(cluster.B, TwoReplicas.DailyKey, "day two")).Status);
    }

    [Fact]
    public async Task Redis_flushed_mid_run_is_rebuilt_from_the_ledger_without_overshoot()
    {
        using var gate = new SemaphoreSlim(16);
        var completed = 0;
        var flushed = 0;
        var tasks = Enumerable.Range(0, 150).Select(async i =>
        {
            await gate.WaitAsync(Ct);
            try
            {
                var r = await SendStreamAsync(i % 2 == 0 ? cluster.A : cluster.B, TwoReplicas.FlushKey, $"request {i:000}");
                if (Interlocked.Increment(ref completed) == 25 && Interlocked.Exchange(ref flushed, 1) == 0)
                {
                    // Redis loses everything (data and loaded scripts), as a restart without persistence would.
                    var server = cluster.RedisClient.GetServers()[0];
                    await server.FlushAllDatabasesAsync();
                    await server.ScriptFlushAsync();
                }
                return r;
            }
            finally
            {
                gate.Release();
            }
        });
        var results = await Task.WhenAll(tasks);
        var ok = results.Count(r => r.Status == 200);
        Assert.All(results.Where(r => r.Status != 200), r => Assert.Equal("budget_exceeded", r.Code));

        var (rows, ledgerCost) = await cluster.LedgerAsync("flush", ok);
        var redisSpent = await cluster.RedisSpentAsync("flush", "total");
        TestContext.Current.TestOutputHelper?.WriteLine($"flush: ok={ok} ledger={ledgerCost} redis={redisSpent} budget={TwoReplicas.FlushBudgetMicro}");
        Assert.Equal(ok, rows);
        Assert.True(ok > 25, "requests were admitted after the flush");
        Assert.True(ledgerCost <= TwoReplicas.FlushBudgetMicro, $"overshoot: {ledgerCost} > {TwoReplicas.FlushBudgetMicro}");
        Assert.Equal(ledgerCost, redisSpent);
    }

    [Fact]
    public async Task A_re_registration_racing_settlements_never_brings_a_settled_reservation_back()
    {
        // A replica puts its in-flight reservations back in Redis after Redis lost them, again every 25 ms while another
        // replica rebuilds. A request that settles meanwhile must not have its reservation put back after it settled: it
        // would hold budget until it expired (15 minutes), refusing requests the budget has room for.
        var admission = cluster.A.Services.GetRequiredService<AdmissionService>();
        var (caller, _) = await cluster.A.Services.GetRequiredService<TenantStore>().AuthenticateAsync(TwoReplicas.ReregKey, () => true, Ct);
        var tickets = new List<AdmissionTicket>();
        for (var i = 0; i < 1000; i++)
        {
            tickets.Add((await admission.AdmitAsync(caller!, "priced", 16, 100, Ct)).Ticket!);
        }
        // Most came from admission leases: ending them leaves each request in flight with a reservation of its own, and the
        // request below goes to Redis (a lease would admit it in memory) and meets the rebuild.
        await admission.RetireLeasesAsync();
        var settlement = new Settlement("ok", 200, "openrouter", "gpt-priced", new TokenUsage(6, 3), 120, Stream: false, TraceId: null);

        // Redis loses the tenant's keys and every script; another replica has begun the rebuild (its marker is pending).
        var db = cluster.RedisClient.GetDatabase();
        var server = cluster.RedisClient.GetServers()[0];
        await foreach (var key in server.KeysAsync(pattern: "mg:{t:rereg}:*"))
        {
            await db.KeyDeleteAsync(key);
        }
        await server.ScriptFlushAsync();
        await db.StringSetAsync("mg:{t:rereg}:mark:total", "p:other", TimeSpan.FromSeconds(30));

        // This replica's next request re-registers what is in flight every 25 ms while it waits, as the others settle.
        var waiting = admission.AdmitAsync(caller!, "priced", 16, 100, Ct);
        foreach (var batch in tickets.Chunk(8))
        {
            await Task.WhenAll(batch.Select(t => admission.SettleAsync(t, settlement)));
            await Task.Delay(1, Ct);
        }
        await db.StringSetAsync("mg:{t:rereg}:mark:total", "r:other"); // the other replica's rebuild completes
        var last = await waiting;
        Assert.NotNull(last.Ticket);
        Assert.True(await db.SortedSetLengthAsync("mg:{t:rereg}:reservations:total") > 0, "the waiting request holds its reservation");
        await admission.SettleAsync(last.Ticket, settlement);
        // The waiting request may have brought a lease (the replica's demand was high a moment ago): it ends, and with it
        // its own reservation; a settled request's reservation put back would remain.
        await admission.RetireLeasesAsync();

        Assert.Equal(0, await db.SortedSetLengthAsync("mg:{t:rereg}:reservations:total"));
        Assert.Equal(0, (long)await db.StringGetAsync("mg:{t:rereg}:reserved:total"));
        Assert.Equal(1001 * 120, await cluster.RedisSpentAsync("rereg", "total"));
    }

    [Fact]
    public async Task A_stream_cut_short_and_a_client_that_leaves_are_billed_for_what_was_produced()
    {
        var cut = await SendStreamAsync(cluster.A, TwoReplicas.CutKey, "one two three four five six seven", model: "fault-cut-stream", maxTokens: 20);
        Assert.Equal(200, cut.Status);
        Assert.False(cut.Done);

        using (var cts = CancellationTokenSource.CreateLinkedTokenSource(Ct))
        {
            using var request = BudgetCluster.Chat(TwoReplicas.CutKey, "alpha beta gamma delta epsilon zeta eta theta", model: "fault-slow-chunks@300", maxTokens: 20);
            using var response = await cluster.B.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cts.Token);
            await using var body = await response.Content.ReadAsStreamAsync(cts.Token);
            using var reader = new StreamReader(body);
            var events = 0;
            while (events < 3 && await reader.ReadLineAsync(cts.Token) is { } line)
            {
                events += line.StartsWith("data: ", StringComparison.Ordinal) ? 1 : 0;
            }
            await cts.CancelAsync();
        }

        await cluster.LedgerAsync("cut", 2);
        var cutCost = await cluster.ScalarAsync<long>(
            "SELECT cost_micro FROM usage_ledger WHERE tenant_id = 'cut' AND status = 'stream_error' AND usage_estimated AND output_tokens > 0");
        var leftCost = await cluster.ScalarAsync<long>(
            "SELECT cost_micro FROM usage_ledger WHERE tenant_id = 'cut' AND status = 'client_disconnected' AND output_tokens > 0");
        Assert.True(cutCost > 0);
        Assert.True(leftCost > 0);
        Assert.Equal(cutCost + leftCost, await cluster.RedisSpentAsync("cut", "total"));
    }

    internal sealed record Result(int Status, string? Type, string? Code, string? RetryAfter, Dictionary<string, string> Headers, bool Done);

    private static async Task<Result> SendStreamAsync(GatewayApp app, string key, string content, string model = "priced", int? maxTokens = 10)
    {
        using var response = await app.SendAsync(BudgetCluster.Chat(key, content, stream: true, maxTokens, model));
        var headers = response.Headers.ToDictionary(h => h.Key.ToLowerInvariant(), h => string.Join(",", h.Value));
        var retryAfter = headers.GetValueOrDefault("retry-after");
        if (response.StatusCode != HttpStatusCode.OK)
        {
            var error = (await GatewayApp.ReadJsonAsync(response)).GetProperty("error");
            return new Result((int)response.StatusCode, error.GetProperty("type").GetString(), error.GetProperty("code").GetString(), retryAfter, headers, false);
        }
        var data = await GatewayApp.ReadSseDataAsync(response);
        return new Result(200, null, null, retryAfter, headers, data.Count > 0 && data[^1] == "[DONE]");
    }
}
