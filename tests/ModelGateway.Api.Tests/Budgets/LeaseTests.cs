using System.Net;
using Microsoft.Extensions.DependencyInjection;
using ModelGateway.Api.Budgets;
using ModelGateway.Api.Providers;
using ModelGateway.Api.Tenancy;
using ModelGateway.Api.Tests.Support;

namespace ModelGateway.Api.Tests.Budgets;

/// <summary>Two replicas with admission leases on (their lifetime here: 150 ms, half the fixture's rebuild grace).</summary>
public sealed class LeasedReplicas : BudgetCluster
{
    public const string SteadyKey = "sk-lease-steady-0123456789";
    public const string LostKey = "sk-lease-lost-0123456789ab";
    public const string MinuteKey = "sk-lease-minute-012345678";
    public const string TightKey = "sk-lease-tight-0123456789a";
    public const string InFlightKey = "sk-lease-inflight-01234567";
    public const string BurstKey = "sk-lease-burst-0123456789a";
    public const string BurstsKey = "sk-lease-bursts-012345678";
    public const int SteadyRpm = 300;
    public const long LostBudgetMicro = 40_000;
    public const long TightBudgetMicro = 4_000;

    protected override IEnumerable<KeyValuePair<string, string?>> Tenants => new Dictionary<string, string?>
    {
        ["Tenancy:Seed:1:Id"] = "lease-steady",
        ["Tenancy:Seed:1:ApiKeys:0"] = SteadyKey,
        ["Tenancy:Seed:1:RequestsPerMinute"] = SteadyRpm.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["Tenancy:Seed:1:TokensPerMinute"] = "1000000",
        ["Tenancy:Seed:1:BudgetUsd"] = "10",
        ["Tenancy:Seed:2:Id"] = "lease-lost",
        ["Tenancy:Seed:2:ApiKeys:0"] = LostKey,
        ["Tenancy:Seed:2:BudgetUsd"] = "0.04",
        ["Tenancy:Seed:3:Id"] = "lease-minute",
        ["Tenancy:Seed:3:ApiKeys:0"] = MinuteKey,
        ["Tenancy:Seed:3:RequestsPerMinute"] = "100000",
        ["Tenancy:Seed:4:Id"] = "lease-tight",
        ["Tenancy:Seed:4:ApiKeys:0"] = TightKey,
        ["Tenancy:Seed:4:BudgetUsd"] = "0.004",
        ["Tenancy:Seed:5:Id"] = "lease-inflight",
        ["Tenancy:Seed:5:ApiKeys:0"] = InFlightKey,
        ["Tenancy:Seed:5:BudgetUsd"] = "1",
        ["Tenancy:Seed:5:TokensPerMinute"] = "1000000",
        ["Tenancy:Seed:6:Id"] = "lease-burst",
        ["Tenancy:Seed:6:ApiKeys:0"] = BurstKey,
        ["Tenancy:Seed:6:BudgetUsd"] = "10",
        ["Tenancy:Seed:6:TokensPerMinute"] = "1000000",
        ["Tenancy:Seed:7:Id"] = "lease-bursts",
        ["Tenancy:Seed:7:ApiKeys:0"] = BurstsKey,
        ["Tenancy:Seed:7:BudgetUsd"] = "10",
        ["Gateway:Providers:openrouter:FirstByteTimeout"] = "00:00:15",
    };
}

/// <summary>
/// Admission leases (<see cref="BudgetOptions.LeaseLifetime"/>): a tenant's steady traffic is admitted in memory from blocks
/// Redis reserved for the replica, and every limit stays exact across replicas, through a minute's end and a Redis data loss.
/// </summary>
public sealed class LeaseTests(LeasedReplicas cluster) : IClassFixture<LeasedReplicas>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Steady_traffic_is_admitted_from_leases_and_requests_per_minute_stay_exact_across_two_replicas()
    {
        using var admissions = new AdmissionResults("lease-steady");
        var minute = cluster.Time.GetUtcNow().ToUnixTimeMilliseconds() / 60_000;
        var served = 0;
        var refused = 0;
        // 24 clients over both replicas until the minute's requests are used up.
        await Task.WhenAll(Enumerable.Range(0, 24).Select(async w =>
        {
            var app = w % 2 == 0 ? cluster.A : cluster.B;
            while (true)
            {
                var status = await SendAsync(app, LeasedReplicas.SteadyKey, $"client {w}");
                if (status != HttpStatusCode.OK)
                {
                    Assert.Equal(HttpStatusCode.TooManyRequests, status);
                    Interlocked.Increment(ref refused);
                    return;
                }
                Interlocked.Increment(ref served);
            }
        }));
        var leasedInBurst = admissions["admitted_leased"];
        Assert.True(served <= LeasedReplicas.SteadyRpm, $"overshoot: {served} > {LeasedReplicas.SteadyRpm}");

        // The leases end; what they did not use goes back, so the minute's every request is served, and not one more.
        await RetireLeasesAsync();
        while (await SendAsync(served % 2 == 0 ? cluster.A : cluster.B, LeasedReplicas.SteadyKey, "one at a time") == HttpStatusCode.OK)
        {
            served++;
            Assert.True(served <= LeasedReplicas.SteadyRpm, $"overshoot: {served} > {LeasedReplicas.SteadyRpm}");
        }
        TestContext.Current.TestOutputHelper?.WriteLine($"served {served}, {admissions}, leased in the burst {leasedInBurst}");
        Assert.Equal(LeasedReplicas.SteadyRpm, served);
        Assert.True(leasedInBurst >= served / 3, $"leased {leasedInBurst} of {served}: {admissions}");

        // Redis holds exactly what was served: the requests in the window, the actual tokens in the token window,
        // the actual cost in spent as in the ledger, and no reservation left once all settled and the leases ended.
        var db = cluster.RedisClient.GetDatabase();
        var (rows, cost) = await cluster.LedgerAsync("lease-steady", served);
        Assert.Equal(served, rows);
        await RetireLeasesAsync();
        Assert.Equal(LeasedReplicas.SteadyRpm, (long)await db.StringGetAsync($"mg:{{t:lease-steady}}:rpm:{minute}"));
        Assert.Equal(await cluster.ScalarAsync<long>("SELECT sum(input_tokens + output_tokens)::bigint FROM usage_ledger WHERE tenant_id = 'lease-steady'"),
            (long)await db.StringGetAsync($"mg:{{t:lease-steady}}:tpm:{minute}"));
        await AssertNothingReservedAsync("lease-steady", spentMicro: cost);
    }

    [Fact]
    public async Task A_lease_ends_with_its_minute_and_gives_the_requests_it_did_not_use_back_to_that_minute()
    {
        using var admissions = new AdmissionResults("lease-minute");
        var first = cluster.Time.GetUtcNow().ToUnixTimeMilliseconds() / 60_000;
        var served = 0;
        await Task.WhenAll(Enumerable.Range(0, 16).Select(async w =>
        {
            for (var i = 0; i < 15; i++)
            {
                Assert.Equal(HttpStatusCode.OK, await SendAsync(cluster.A, LeasedReplicas.MinuteKey, $"client {w}"));
                Interlocked.Increment(ref served);
            }
        }));
        Assert.True(admissions["admitted_leased"] > 0, admissions.ToString());

        // The next minute: the lease of the last one admits nothing more; Redis admits, in the new window.
        cluster.Time.Advance(TimeSpan.FromMinutes(1));
        var leased = admissions["admitted_leased"];
        Assert.Equal(HttpStatusCode.OK, await SendAsync(cluster.A, LeasedReplicas.MinuteKey, "a new minute"));
        Assert.Equal(leased, admissions["admitted_leased"]);
        await RetireLeasesAsync();
        var db = cluster.RedisClient.GetDatabase();
        Assert.Equal(served, (long)await db.StringGetAsync($"mg:{{t:lease-minute}}:rpm:{first}"));
        Assert.Equal(1, (long)await db.StringGetAsync($"mg:{{t:lease-minute}}:rpm:{first + 1}"));
    }

    [Fact]
    public async Task Redis_losing_its_data_ends_the_leases_and_the_budget_still_holds_rebuilt_from_the_ledger()
    {
        using var admissions = new AdmissionResults("lease-lost");
        var completed = 0;
        var flushed = 0;
        var leasedAtFlush = 0;
        var served = 0;
        await Task.WhenAll(Enumerable.Range(0, 16).Select(async w =>
        {
            var app = w % 2 == 0 ? cluster.A : cluster.B;
            while (true)
            {
                var status = await SendAsync(app, LeasedReplicas.LostKey, $"client {w}", expectedRefusal: "budget_exceeded");
                if (status != HttpStatusCode.OK)
                {
                    return;
                }
                Interlocked.Increment(ref served);
                if (Interlocked.Increment(ref completed) == 80 && Interlocked.Exchange(ref flushed, 1) == 0)
                {
                    leasedAtFlush = admissions["admitted_leased"];
                    var server = cluster.RedisClient.GetServers()[0];
                    await server.FlushAllDatabasesAsync();
                    await server.ScriptFlushAsync();
                }
            }
        }));
        TestContext.Current.TestOutputHelper?.WriteLine($"served {served}, {admissions}, leased before the flush {leasedAtFlush}");
        Assert.True(leasedAtFlush > 0, "leases were in use when Redis lost its data");
        Assert.True(admissions["admitted_leased"] > leasedAtFlush, "and again after the rebuild");

        var (rows, cost) = await cluster.LedgerAsync("lease-lost", served);
        Assert.Equal(served, rows);
        Assert.True(cost <= LeasedReplicas.LostBudgetMicro, $"overshoot: {cost} > {LeasedReplicas.LostBudgetMicro}");
        await RetireLeasesAsync();
        Assert.Equal(cost, await cluster.RedisSpentAsync("lease-lost", "total"));
        Assert.Equal(0, (long)await cluster.RedisClient.GetDatabase().StringGetAsync("mg:{t:lease-lost}:reserved:total"));
    }

    [Fact]
    public async Task A_retired_lease_leaves_each_request_it_admitted_and_still_in_flight_reserved_until_it_settles()
    {
        var admission = cluster.A.Services.GetRequiredService<AdmissionService>();
        var (caller, _) = await cluster.A.Services.GetRequiredService<TenantStore>().AuthenticateAsync(LeasedReplicas.InFlightKey, () => true, Ct);
        var tickets = new List<AdmissionTicket>();
        for (var i = 0; i < 60; i++)
        {
            tickets.Add((await admission.AdmitAsync(caller!, "priced", 20, 300, Ct)).Ticket!);
        }
        var leased = tickets.Count(t => t.Lease is not null);
        Assert.True(leased > 20, $"{leased} of {tickets.Count} admitted from a lease");

        // The leases end while every request is in flight: each request now holds its own worst case, the leases nothing.
        await admission.RetireLeasesAsync();
        var db = cluster.RedisClient.GetDatabase();
        var held = (await db.SortedSetRangeByRankAsync("mg:{t:lease-inflight}:reservations:total")).Select(v => (string)v!).Order();
        Assert.Equal(tickets.Select(t => t.ReservationMember).Order(), held);
        Assert.Equal(60 * 300, (long)await db.StringGetAsync("mg:{t:lease-inflight}:reserved:total"));
        var minute = cluster.Time.GetUtcNow().ToUnixTimeMilliseconds() / 60_000;
        Assert.Equal(60 * 20, (long)await db.StringGetAsync($"mg:{{t:lease-inflight}}:tpm:{minute}"));

        // They settle as any request does.
        await Task.WhenAll(tickets.Select(t => admission.SettleAsync(t, Settled)));
        await AssertNothingReservedAsync("lease-inflight", spentMicro: 60 * 120);
        Assert.Equal(60 * 9, (long)await db.StringGetAsync($"mg:{{t:lease-inflight}}:tpm:{minute}"));
    }

    [Fact]
    public async Task A_burst_waits_for_the_lease_on_its_way_instead_of_asking_Redis_one_request_at_a_time()
    {
        var admission = cluster.A.Services.GetRequiredService<AdmissionService>();
        var (caller, _) = await cluster.A.Services.GetRequiredService<TenantStore>().AuthenticateAsync(LeasedReplicas.BurstKey, () => true, Ct);
        Task<AdmissionResult> Admit() => admission.AdmitAsync(caller!, "priced", 20, 300, Ct);
        var tickets = new List<AdmissionTicket>();
        // Below the demand that asks for a lease, each request goes to Redis.
        for (var i = 0; i < AdmissionService.MinLeaseDemand - 1; i++)
        {
            tickets.Add((await Admit()).Ticket!);
        }
        Assert.All(tickets, t => Assert.Null(t.Lease));

        // Redis holds every script for half a second, so the next request's grant is still on its way while the burst
        // arrives: the burst waits for it (and for the refill the burst's own demand sizes) instead of sending a script each.
        await cluster.RedisClient.GetServers()[0].ExecuteAsync("CLIENT", "PAUSE", "500", "WRITE");
        var burst = await Task.WhenAll(Enumerable.Range(0, 30).Select(_ => Task.Run(Admit, Ct)));
        Assert.All(burst, r => Assert.NotNull(r.Ticket));
        var byRedis = burst.Count(r => r.Ticket!.Lease is null);
        Assert.True(byRedis <= AdmissionService.MinLeaseDemand, $"{byRedis} of the burst's 30 requests admitted by a script of their own");
        tickets.AddRange(burst.Select(r => r.Ticket!));

        // Limits stay exact: once all settle and the leases end, Redis holds what was used and no reservation.
        await Task.WhenAll(tickets.Select(t => admission.SettleAsync(t, Settled)));
        await admission.RetireLeasesAsync();
        var db = cluster.RedisClient.GetDatabase();
        var minute = cluster.Time.GetUtcNow().ToUnixTimeMilliseconds() / 60_000;
        await AssertNothingReservedAsync("lease-burst", spentMicro: tickets.Count * 120);
        Assert.Equal(tickets.Count * 9, (long)await db.StringGetAsync($"mg:{{t:lease-burst}}:tpm:{minute}"));
    }

    [Fact]
    public async Task A_tenant_whose_requests_come_in_bursts_gets_a_lease_at_the_start_of_the_next_burst()
    {
        var admission = cluster.A.Services.GetRequiredService<AdmissionService>();
        var (caller, _) = await cluster.A.Services.GetRequiredService<TenantStore>().AuthenticateAsync(LeasedReplicas.BurstsKey, () => true, Ct);
        async Task<AdmissionTicket[]> BurstAsync(int requests) => [.. (await Task.WhenAll(Enumerable.Range(0, requests)
            .Select(_ => Task.Run(() => admission.AdmitAsync(caller!, "priced", 20, 300, Ct), Ct)))).Select(r => r.Ticket!)];

        var first = await BurstAsync(64);
        await Task.WhenAll(first.Select(t => admission.SettleAsync(t, Settled)));
        // Idle for more than two lease lifetimes (150 ms here): the first burst's lease has ended, its demand still counts
        // (halved), so the next burst's first request asks for a lease and the rest wait for it.
        await Task.Delay(350, Ct);
        var second = await BurstAsync(32);
        var byRedis = second.Count(t => t.Lease is null);
        Assert.True(byRedis <= 2, $"{byRedis} of the second burst's 32 requests admitted by a script of their own");

        await Task.WhenAll(second.Select(t => admission.SettleAsync(t, Settled)));
        await admission.RetireLeasesAsync();
        await AssertNothingReservedAsync("lease-bursts", spentMicro: 96 * 120);
    }

    [Fact]
    public async Task No_lease_is_granted_near_a_limit()
    {
        using var admissions = new AdmissionResults("lease-tight");
        var served = 0;
        await Task.WhenAll(Enumerable.Range(0, 16).Select(async w =>
        {
            while (await SendAsync(w % 2 == 0 ? cluster.A : cluster.B, LeasedReplicas.TightKey, $"client {w}", expectedRefusal: "budget_exceeded") == HttpStatusCode.OK)
            {
                Interlocked.Increment(ref served);
            }
        }));
        // An eighth of $0.004 never holds two worst cases (~280 µ$ each): every request went to Redis.
        Assert.True(served > 5, $"served {served}");
        Assert.Equal(0, admissions["admitted_leased"]);
        Assert.Equal(served, admissions["admitted"]);
        var (_, cost) = await cluster.LedgerAsync("lease-tight", served);
        Assert.True(cost <= LeasedReplicas.TightBudgetMicro, $"overshoot: {cost} > {LeasedReplicas.TightBudgetMicro}");
    }

    /// <summary>Every request settled (6 in, 3 out, 120 µ$ each unless told), as the tests below settle them.</summary>
    private static readonly Settlement Settled = new("ok", 200, "openrouter", "gpt-priced", new TokenUsage(6, 3), 120, Stream: false, TraceId: null);

    /// <summary>Once all settled and the leases ended: no reservation left, nothing reserved, spent as settled.</summary>
    private async Task AssertNothingReservedAsync(string tenant, long spentMicro)
    {
        var db = cluster.RedisClient.GetDatabase();
        Assert.Equal(0, await db.SortedSetLengthAsync($"mg:{{t:{tenant}}}:reservations:total"));
        Assert.Equal(0, (long)await db.StringGetAsync($"mg:{{t:{tenant}}}:reserved:total"));
        Assert.Equal(spentMicro, await cluster.RedisSpentAsync(tenant, "total"));
    }

    private Task RetireLeasesAsync() => Task.WhenAll(
        cluster.A.Services.GetRequiredService<AdmissionService>().RetireLeasesAsync(),
        cluster.B.Services.GetRequiredService<AdmissionService>().RetireLeasesAsync());

    /// <summary>One non-streaming request; a refusal must be the expected one (rate limit unless told).</summary>
    private static async Task<HttpStatusCode> SendAsync(GatewayApp app, string key, string content, string expectedRefusal = "rate_limit_exceeded")
    {
        using var response = await app.SendAsync(BudgetCluster.Chat(key, content, stream: false));
        if (response.StatusCode != HttpStatusCode.OK)
        {
            var error = (await GatewayApp.ReadJsonAsync(response)).GetProperty("error");
            Assert.Equal(expectedRefusal, error.GetProperty("code").GetString());
        }
        return response.StatusCode;
    }
}
