using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using ModelGateway.Api.Budgets;
using ModelGateway.Api.Providers;
using ModelGateway.Api.Tenancy;
using StackExchange.Redis;

namespace ModelGateway.Api.Tests.Budgets;

/// <summary>One replica whose settlements may wait 10 s for an admission to carry them: longer than any test here runs.</summary>
public sealed class LongSettlementWindow : BudgetCluster
{
    public const string Key = "sk-carry-0123456789ab";

    protected override int Replicas => 1;

    protected override IEnumerable<KeyValuePair<string, string?>> Tenants => new Dictionary<string, string?>
    {
        ["Tenancy:Seed:1:Id"] = "carry",
        ["Tenancy:Seed:1:ApiKeys:0"] = Key,
        ["Tenancy:Seed:1:BudgetUsd"] = "1",
        ["Tenancy:Seed:1:TokensPerMinute"] = "100000",
        ["Budgets:SettlementWindow"] = "00:00:10",
    };
}

/// <summary>
/// Settlements ride the next admission of their tenant (<see cref="BudgetOptions.SettlementWindow"/>): the admission's
/// script settles them before it checks anything, so what it sees is as if they had been sent on their own before it.
/// </summary>
public sealed class SettlementWindowTests(LongSettlementWindow cluster) : IClassFixture<LongSettlementWindow>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_settlement_waits_for_the_next_admission_which_settles_it_before_its_checks_and_an_idle_replica_sends_at_once()
    {
        var admission = cluster.A.Services.GetRequiredService<AdmissionService>();
        var (caller, _) = await cluster.A.Services.GetRequiredService<TenantStore>().AuthenticateAsync(LongSettlementWindow.Key, () => true, Ct);
        var db = cluster.RedisClient.GetDatabase();
        var minute = cluster.Time.GetUtcNow().ToUnixTimeMilliseconds() / 60_000;
        RedisKey tpm = $"mg:{{t:carry}}:tpm:{minute}";
        var settlement = new Settlement("ok", 200, "openrouter", "gpt-priced", new TokenUsage(6, 3), 120, Stream: false, TraceId: null);

        var first = (await admission.AdmitAsync(caller!, "priced", 16, 500, Ct)).Ticket!;
        var second = (await admission.AdmitAsync(caller!, "priced", 16, 500, Ct)).Ticket!;
        Assert.Equal(32, (long)await db.StringGetAsync(tpm));

        // Another request is in flight: the settlement waits (the window is 10 s), and Redis still holds its reservation.
        var settled = admission.SettleAsync(first, settlement);
        await Task.Delay(300, Ct);
        Assert.False(settled.IsCompleted, "the settlement waits for an admission to carry it");
        Assert.Equal(2, await db.SortedSetLengthAsync("mg:{t:carry}:reservations:total"));
        Assert.Equal(1000, (long)await db.StringGetAsync("mg:{t:carry}:reserved:total"));

        // The next admission carries it, and its checks already see it: 16 + 9 actual tokens of the first, 16 of its own.
        var clock = Stopwatch.StartNew();
        var third = await admission.AdmitAsync(caller!, "priced", 16, 500, Ct);
        await settled.WaitAsync(TimeSpan.FromSeconds(5), Ct);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5));
        Assert.NotNull(third.Ticket);
        Assert.Equal(16 + 9 + 16, third.Limits.TokensUsed);
        Assert.Equal(120, await cluster.RedisSpentAsync("carry", "total"));
        Assert.Equal(1000, (long)await db.StringGetAsync("mg:{t:carry}:reserved:total"));
        Assert.Equal(2, await db.SortedSetLengthAsync("mg:{t:carry}:reservations:total"));

        // The third's settlement waits for the second; the second's, the last in flight, goes at once and takes it along.
        var third3 = admission.SettleAsync(third.Ticket, settlement);
        await Task.Delay(100, Ct);
        Assert.False(third3.IsCompleted);
        clock.Restart();
        await admission.SettleAsync(second, settlement).WaitAsync(TimeSpan.FromSeconds(5), Ct);
        await third3.WaitAsync(TimeSpan.FromSeconds(5), Ct);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5));
        Assert.Equal(360, await cluster.RedisSpentAsync("carry", "total"));
        Assert.Equal(0, (long)await db.StringGetAsync("mg:{t:carry}:reserved:total"));
        Assert.Equal(0, await db.SortedSetLengthAsync("mg:{t:carry}:reservations:total"));
        Assert.Equal(27, (long)await db.StringGetAsync(tpm));

        // Every ledger row carries the epoch its cost was counted in, whether it rode an admission or went on its own.
        await cluster.LedgerAsync("carry", 3);
        Assert.Equal(3, await cluster.ScalarAsync<long>("SELECT count(*) FROM usage_ledger WHERE tenant_id = 'carry' AND redis_epoch IS NOT NULL"));
    }
}
