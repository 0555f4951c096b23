using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using ModelGateway.Api.Tests.Budgets;
using ModelGateway.Api.Tests.Support;

namespace ModelGateway.Api.Tests.Traces;

/// <summary>One replica on a frozen clock with three tenants: <c>load</c>, <c>alpha</c> and <c>beta</c>.</summary>
public sealed class TraceCluster : BudgetCluster
{
    public const string LoadKey = "sk-load-0123456789";
    public const string AlphaKey = "sk-alpha-0123456789";
    public const string BetaKey = "sk-beta-0123456789";
    public const string OddKey = "sk-odd-0123456789";

    protected override int Replicas => 1;

    protected override IEnumerable<KeyValuePair<string, string?>> Tenants => new Dictionary<string, string?>
    {
        ["Tenancy:Seed:1:Id"] = "load",
        ["Tenancy:Seed:1:ApiKeys:0"] = LoadKey,
        ["Tenancy:Seed:2:Id"] = "alpha",
        ["Tenancy:Seed:2:ApiKeys:0"] = AlphaKey,
        ["Tenancy:Seed:3:Id"] = "beta",
        ["Tenancy:Seed:3:ApiKeys:0"] = BetaKey,
        ["Tenancy:Seed:4:Id"] = "odd",
        ["Tenancy:Seed:4:ApiKeys:0"] = OddKey,
        ["Traces:FlushInterval"] = "00:00:00.050",
        // 32 concurrent requests on a busy CI machine: the fake's first byte may take longer than the usual 2 s.
        ["Gateway:Providers:openrouter:FirstByteTimeout"] = "00:00:15",
    };

    /// <summary>Waits until the tenant has <paramref name="expected"/> traces stored (or 30 s pass); returns the count.</summary>
    public async Task<long> TraceCountAsync(string tenant, long expected)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            var n = await ScalarAsync<long>("SELECT count(*) FROM traces WHERE tenant_id = @t", ("t", tenant));
            if (n >= expected || DateTime.UtcNow > deadline)
            {
                return n;
            }
            await Task.Delay(50);
        }
    }

    public async Task<(HttpStatusCode Status, JsonElement Body, string? Next)> GetAsync(string path, string key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        using var response = await A.Client.SendAsync(request, TestContext.Current.CancellationToken);
        var text = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        var next = response.Headers.TryGetValues("x-next-cursor", out var values) ? values.Single() : null;
        return (response.StatusCode, JsonDocument.Parse(text).RootElement.Clone(), next);
    }
}

/// <summary>The trace history: every request stored under load, filters, keyset paging, tenant isolation.</summary>
public sealed class TraceHistoryTests(TraceCluster cluster) : IClassFixture<TraceCluster>
{
    [Fact]
    public async Task A_thousand_concurrent_requests_all_leave_a_trace()
    {
        const int Requests = 1_000;
        var traceIds = new ConcurrentBag<string>();
        var served = 0;
        await Parallel.ForAsync(0, Requests, new ParallelOptions { MaxDegreeOfParallelism = 32, CancellationToken = TestContext.Current.CancellationToken },
            async (i, ct) =>
            {
                using var response = await cluster.A.Client.SendAsync(BudgetCluster.Chat(TraceCluster.LoadKey, $"hello {i}", stream: i % 2 == 0), ct);
                await response.Content.ReadAsStringAsync(ct);
                traceIds.Add(response.Headers.GetValues("x-trace-id").Single());
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    Interlocked.Increment(ref served);
                }
            });

        // Every request is traced, whatever its ending (a CPU-starved CI box may time a few out): the count, the ids the
        // clients got back, and an 'ok' trace with its attempt for each answer served.
        Assert.InRange(served, Requests * 9 / 10, Requests);
        Assert.Equal(Requests, await cluster.TraceCountAsync("load", Requests));
        Assert.Equal(Requests, await cluster.ScalarAsync<long>(
            "SELECT count(DISTINCT trace_id) FROM traces WHERE tenant_id = 'load' AND trace_id = ANY(@ids)", ("ids", traceIds.Distinct().ToArray())));
        Assert.Equal(served, await cluster.ScalarAsync<long>(
            "SELECT count(*) FROM traces WHERE tenant_id = 'load' AND status = 'ok' AND jsonb_array_length(attempts) >= 1 AND output_tokens > 0"));
        Assert.Equal(0, await cluster.ScalarAsync<long>(
            "SELECT count(*) FROM traces WHERE tenant_id = 'load' AND stream AND status = 'ok' AND ttft_ms IS NULL"));
    }

    [Fact]
    public async Task A_model_name_postgres_cannot_store_is_traced_cleaned_and_does_not_hold_up_later_traces()
    {
        // A NUL is valid JSON (\u0000) but not Postgres text: stored as U+FFFD, and cut to 256 characters.
        using (var odd = await cluster.A.Client.SendAsync(BudgetCluster.Chat(TraceCluster.OddKey, "x", stream: false, model: "chat\0evil" + new string('m', 5000)),
                   TestContext.Current.CancellationToken))
        {
            Assert.Equal(HttpStatusCode.NotFound, odd.StatusCode);
        }
        using (var ok = await cluster.A.Client.SendAsync(BudgetCluster.Chat(TraceCluster.OddKey, "fine", stream: false), TestContext.Current.CancellationToken))
        {
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }
        Assert.Equal(2, await cluster.TraceCountAsync("odd", 2));
        var stored = await cluster.ScalarAsync<string>("SELECT alias FROM traces WHERE tenant_id = 'odd' AND status = 'refused'");
        Assert.StartsWith("chat\uFFFDevil", stored);
        Assert.Equal(256, stored.Length);
    }

    [Fact]
    public async Task Filters_paging_and_tenant_isolation()
    {
        var t0 = cluster.Time.GetUtcNow();
        for (var i = 0; i < 3; i++)
        {
            (await cluster.A.Client.SendAsync(BudgetCluster.Chat(TraceCluster.AlphaKey, "early", stream: false), TestContext.Current.CancellationToken)).Dispose();
        }
        cluster.Time.Advance(TimeSpan.FromMinutes(1));
        for (var i = 0; i < 2; i++)
        {
            (await cluster.A.Client.SendAsync(BudgetCluster.Chat(TraceCluster.AlphaKey, "late"), TestContext.Current.CancellationToken)).Dispose();
            (await cluster.A.Client.SendAsync(BudgetCluster.Chat(TraceCluster.BetaKey, "beta"), TestContext.Current.CancellationToken)).Dispose();
        }
        using (var failed = await cluster.A.Client.SendAsync(BudgetCluster.Chat(TraceCluster.AlphaKey, "boom", stream: false, model: "fault-500"),
                   TestContext.Current.CancellationToken))
        {
            Assert.False(failed.IsSuccessStatusCode);
        }
        Assert.Equal(6, await cluster.TraceCountAsync("alpha", 6));
        Assert.Equal(2, await cluster.TraceCountAsync("beta", 2));

        // Paging two at a time walks every alpha trace once, newest first; a tenant key sees only its own.
        var seen = new List<JsonElement>();
        string? cursor = null;
        do
        {
            var (status, page, next) = await cluster.GetAsync("/api/traces?limit=2" + (cursor is null ? "" : "&cursor=" + cursor), TraceCluster.AlphaKey);
            Assert.Equal(HttpStatusCode.OK, status);
            Assert.InRange(page.GetArrayLength(), 1, 2);
            seen.AddRange(page.EnumerateArray());
            cursor = next;
        }
        while (cursor is not null);
        Assert.Equal(6, seen.Count);
        Assert.Equal(6, seen.Select(t => t.GetProperty("id").GetString()).Distinct().Count());
        Assert.All(seen, t => Assert.Equal("alpha", t.GetProperty("tenant").GetString()));
        var times = seen.Select(t => t.GetProperty("ts").GetDateTimeOffset()).ToList();
        Assert.Equal(times.OrderByDescending(t => t), times);
        var failedTrace = Assert.Single(seen, t => t.GetProperty("model").GetString() == "fault-500");

        // Filters.
        Assert.Equal(0, (await cluster.GetAsync("/api/traces?tenant=beta", TraceCluster.AlphaKey)).Body.GetArrayLength());
        Assert.Equal(2, (await cluster.GetAsync("/api/traces?tenant=beta", GatewayFixture.AdminKey)).Body.GetArrayLength());
        Assert.Equal(1, (await cluster.GetAsync("/api/traces?model=fault-500", TraceCluster.AlphaKey)).Body.GetArrayLength());
        Assert.Equal(5, (await cluster.GetAsync("/api/traces?status=ok&tenant=alpha", GatewayFixture.AdminKey)).Body.GetArrayLength());
        Assert.Equal(1, (await cluster.GetAsync("/api/traces?status=upstream_error", TraceCluster.AlphaKey)).Body.GetArrayLength());
        var mid = Uri.EscapeDataString((t0 + TimeSpan.FromSeconds(30)).ToString("o"));
        Assert.Equal(3, (await cluster.GetAsync($"/api/traces?since={mid}", TraceCluster.AlphaKey)).Body.GetArrayLength());
        Assert.Equal(3, (await cluster.GetAsync($"/api/traces?until={mid}", TraceCluster.AlphaKey)).Body.GetArrayLength());
        Assert.Equal(HttpStatusCode.BadRequest, (await cluster.GetAsync("/api/traces?cursor=nonsense", TraceCluster.AlphaKey)).Status);

        // The full record: its own tenant and the admin see it; another tenant gets 404, as for an id that does not exist.
        var failedId = failedTrace.GetProperty("id").GetString();
        var (ownStatus, full, _) = await cluster.GetAsync($"/api/traces/{failedId}", TraceCluster.AlphaKey);
        Assert.Equal(HttpStatusCode.OK, ownStatus);
        Assert.Equal("upstream_error", full.GetProperty("status").GetString());
        var attempt = full.GetProperty("attempts")[0];
        Assert.Equal("fault-500", attempt.GetProperty("model").GetString());
        Assert.InRange(attempt.GetProperty("status").GetInt32(), 500, 599);
        Assert.Equal(JsonValueKind.Null, full.GetProperty("structured_output").ValueKind);
        Assert.Equal(HttpStatusCode.OK, (await cluster.GetAsync($"/api/traces/{failedId}", GatewayFixture.AdminKey)).Status);
        Assert.Equal(HttpStatusCode.OK, (await cluster.GetAsync($"/api/traces/{full.GetProperty("trace_id").GetString()}", TraceCluster.AlphaKey)).Status);
        Assert.Equal(HttpStatusCode.NotFound, (await cluster.GetAsync($"/api/traces/{failedId}", TraceCluster.BetaKey)).Status);
        Assert.Equal(HttpStatusCode.NotFound, (await cluster.GetAsync($"/api/traces/{Guid.NewGuid()}", GatewayFixture.AdminKey)).Status);
        Assert.Equal(HttpStatusCode.Unauthorized, (await cluster.GetAsync("/api/traces", "sk-nope")).Status);
    }
}

/// <summary>A replica of its own, because retention moves its clock a month.</summary>
public sealed class RetentionCluster : BudgetCluster
{
    protected override int Replicas => 1;

    protected override IEnumerable<KeyValuePair<string, string?>> Tenants => new Dictionary<string, string?>
    {
        ["Traces:FlushInterval"] = "00:00:00.050",
    };
}

public sealed class TraceRetentionTests(RetentionCluster cluster) : IClassFixture<RetentionCluster>
{
    [Fact]
    public async Task Clean_up_deletes_only_traces_older_than_the_retention()
    {
        async Task SendAsync(int n)
        {
            for (var i = 0; i < n; i++)
            {
                using var response = await cluster.A.Client.SendAsync(BudgetCluster.Chat(GatewayFixture.DevKey, "hi", stream: false),
                    TestContext.Current.CancellationToken);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            }
        }

        async Task<long> CountAsync(string where) => await cluster.ScalarAsync<long>($"SELECT count(*) FROM traces WHERE {where}");

        var t0 = cluster.Time.GetUtcNow();
        await SendAsync(3);
        cluster.Time.Advance(TimeSpan.FromDays(20));
        await SendAsync(2);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (await CountAsync("true") < 5 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50, TestContext.Current.CancellationToken);
        }
        Assert.Equal(5, await CountAsync("true"));

        // 31 days after the first requests: they are past the 30-day retention, the later ones are not. The clean-up
        // runs hourly on the (fake) clock; advance an hour at a time until it has run.
        cluster.Time.Advance(TimeSpan.FromDays(11));
        var cutoff = t0 + TimeSpan.FromDays(1);
        deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (await CountAsync("ts < @c".Replace("@c", $"'{cutoff:o}'", StringComparison.Ordinal)) > 0 && DateTime.UtcNow < deadline)
        {
            cluster.Time.Advance(TimeSpan.FromHours(1));
            await Task.Delay(100, TestContext.Current.CancellationToken);
        }
        Assert.Equal(0, await CountAsync($"ts < '{cutoff:o}'"));
        Assert.Equal(2, await CountAsync("true"));
    }
}
