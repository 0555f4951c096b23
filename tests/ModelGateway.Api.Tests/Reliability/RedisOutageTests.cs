using System.Net;
using ModelGateway.Api.Tests.Budgets;
using ModelGateway.Api.Tests.Support;

namespace ModelGateway.Api.Tests.Reliability;

/// <summary>One replica with a Redis of its own (the test kills it) and a budgeted tenant.</summary>
public abstract class RedisOutageReplica : BudgetCluster
{
    public const string Key = "sk-redis-outage-0123456789";
    public const long BudgetMicro = 20_000;

    protected override int Replicas => 1;

    protected virtual IEnumerable<KeyValuePair<string, string?>> Mode => [];

    protected override IEnumerable<KeyValuePair<string, string?>> Tenants => new Dictionary<string, string?>
    {
        ["Tenancy:Seed:1:Id"] = "outage",
        ["Tenancy:Seed:1:ApiKeys:0"] = Key,
        ["Tenancy:Seed:1:BudgetUsd"] = "0.02",
    }.Concat(Mode);
}

public sealed class FailClosedReplica : RedisOutageReplica;

public sealed class FailOpenReplica : RedisOutageReplica
{
    public const int LocalLimit = 12;

    protected override IEnumerable<KeyValuePair<string, string?>> Mode => new Dictionary<string, string?>
    {
        ["Budgets:WhenRedisUnavailable"] = "FailOpen",
        ["Budgets:FailOpenRequestsPerMinute"] = LocalLimit.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };
}

/// <summary>
/// Redis killed (a real redis-server process, all data lost) and started again while requests keep arriving. Whatever the
/// mode: no 5xx other than the clear 503, no crash, counters rebuilt from the ledger, and the budget holds exactly after recovery.
/// </summary>
internal static class RedisOutageDrill
{
    /// <param name="Admissions">
    /// <c>model_gateway.admission.duration</c> measurements of the tenant, by result. The meter is process-wide and both modes'
    /// fixtures seed the tenant "outage", so a test may see the other mode's too: assert lower bounds only.
    /// </param>
    public sealed record Figures(int ServedBefore, int ServedDuringFault, int RefusedDuringFault, int ServedAfter, double RecoverySeconds,
        IReadOnlyCollection<OutageDrill.Outcome> Outcomes, DateTime KilledAt, DateTime RestartedAt, IReadOnlyDictionary<string, int> Admissions);

    public static async Task<Figures> RunAsync(RedisOutageReplica cluster)
    {
        using var admissions = new AdmissionResults("outage");
        await using var drill = new OutageDrill(cluster.A, RedisOutageReplica.Key);
        drill.Start();
        await drill.WaitUntilAsync(o => o.Count(x => x.Status == 200) >= 20, TimeSpan.FromSeconds(60), "20 requests served before the fault");

        cluster.Redis.Kill(); // returns once the process is gone
        var killedAt = DateTime.UtcNow;
        await Task.Delay(TimeSpan.FromSeconds(2), TestContext.Current.CancellationToken);
        // The gateway is still up while Redis is gone.
        using (var health = await cluster.A.Client.GetAsync("/health", TestContext.Current.CancellationToken))
        {
            Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        }
        var restartedAt = DateTime.UtcNow;
        await cluster.Redis.RestartAsync();
        await drill.WaitUntilAsync(o => o.Any(x => x.Status == 200 && x.Started > restartedAt), TimeSpan.FromSeconds(60), "a request served after the restart");
        var recovered = drill.Outcomes.Where(x => x.Status == 200 && x.Started > restartedAt).Min(x => x.Ended);
        // Then spend the rest of the budget: refusals say the budget is used up.
        await drill.WaitUntilAsync(o => o.Count(x => x.Code == "budget_exceeded" && x.Started > restartedAt) >= 10, TimeSpan.FromSeconds(90),
            "the budget to be used up after recovery");
        await drill.DisposeAsync();

        var outcomes = drill.Outcomes.ToList();
        var during = outcomes.Where(x => x.Started >= killedAt && x.Started < restartedAt).ToList();
        var figures = new Figures(
            outcomes.Count(x => x.Status == 200 && x.Started < killedAt),
            during.Count(x => x.Status == 200),
            during.Count(x => x.Status != 200),
            outcomes.Count(x => x.Status == 200 && x.Started >= restartedAt),
            (recovered - restartedAt).TotalSeconds,
            outcomes, killedAt, restartedAt, admissions.Snapshot());
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"served before={figures.ServedBefore} during fault={figures.ServedDuringFault} refused during={figures.RefusedDuringFault} " +
            $"after={figures.ServedAfter} recovered {figures.RecoverySeconds:0.00} s after the restart; {drill.Summary()}");

        // Never a 500, never an unclear answer: every refusal is one of the documented ones, in the OpenAI envelope.
        Assert.All(outcomes.Where(x => x.Status != 200), x =>
        {
            Assert.True(x.Status is 503 or 429, $"HTTP {x.Status} {x.Code}");
            Assert.True(x.Code is "admission_unavailable" or "budget_exceeded" or "rate_limit_exceeded", x.Code);
            Assert.True(x.HasRetryAfter || x.Code == "budget_exceeded", "refusals say when to retry");
        });

        // Zero rows lost, and Redis's spend was rebuilt from the ledger: ledger = Redis, within the budget, budget used up.
        var served = outcomes.Count(x => x.Status == 200);
        var (rows, cost) = await cluster.LedgerAsync("outage", served);
        TestContext.Current.TestOutputHelper?.WriteLine($"served={served} ledger rows={rows} rows lost={served - rows}; ledger µ$={cost}");
        Assert.Equal(served, rows);
        Assert.Equal(cost, await cluster.RedisSpentAsync("outage", "total"));
        Assert.True(cost <= RedisOutageReplica.BudgetMicro, $"overshoot: {cost} > {RedisOutageReplica.BudgetMicro}");
        Assert.True(RedisOutageReplica.BudgetMicro - cost < 400, $"budget left unused: {RedisOutageReplica.BudgetMicro - cost}");
        return figures;
    }
}

public sealed class RedisFailClosedTests(FailClosedReplica cluster) : IClassFixture<FailClosedReplica>
{
    [Fact]
    public async Task Redis_killed_under_load_refuses_with_a_clear_503_then_recovers_with_counters_rebuilt_and_no_overshoot()
    {
        var f = await RedisOutageDrill.RunAsync(cluster);
        // Nothing is admitted that Redis did not grant: a lease granted before the kill admits until the replica sees the
        // connection gone or the lease ends (150 ms here), so only requests that began right after the kill may be served.
        Assert.True(f.ServedDuringFault <= f.Admissions.GetValueOrDefault("admitted_leased"), $"served during the fault: {f.ServedDuringFault}");
        Assert.All(f.Outcomes.Where(x => x.Started >= f.KilledAt && x.Started < f.RestartedAt && x.Status == 200),
            x => Assert.True(x.Started < f.KilledAt + TimeSpan.FromSeconds(1), $"served {(x.Started - f.KilledAt).TotalMilliseconds:0} ms after the kill"));
        Assert.True(f.RefusedDuringFault > 10, $"refused during the fault: {f.RefusedDuringFault}");
        Assert.All(f.Outcomes.Where(x => x.Started >= f.KilledAt && x.Started < f.RestartedAt && x.Status != 200), x =>
        {
            Assert.Equal(503, x.Status);
            Assert.Equal("api_error", x.Type);
            Assert.Equal("admission_unavailable", x.Code);
        });
        // Fail fast: refusals during the outage answer at once (the median), and none hangs toward the client's timeout (the
        // slowest: requests caught in flight at the kill wait for the socket to notice, seconds on a loaded CI machine).
        var times = f.Outcomes.Where(x => x.Code == "admission_unavailable").Select(x => (x.Ended - x.Started).TotalMilliseconds).Order().ToList();
        Assert.True(times[times.Count / 2] < 1000, $"median 503 took {times[times.Count / 2]} ms");
        Assert.True(times[^1] < 10_000, $"slowest 503 took {times[^1]} ms");
        Assert.True(f.ServedAfter > 10);
        // Each outcome's admission is measured under its result: the 503s as unavailable, the served as admitted (or admitted_leased).
        Assert.True(f.Admissions.GetValueOrDefault("unavailable") >= times.Count, $"unavailable measured {f.Admissions.GetValueOrDefault("unavailable")} of {times.Count}");
        Assert.True(f.Admissions.GetValueOrDefault("admitted") + f.Admissions.GetValueOrDefault("admitted_leased")
            >= f.ServedBefore + f.ServedDuringFault + f.ServedAfter, string.Join(", ", f.Admissions));
    }
}

public sealed class RedisFailOpenTests(FailOpenReplica cluster) : IClassFixture<FailOpenReplica>
{
    [Fact]
    public async Task Redis_killed_under_load_keeps_serving_on_the_local_limit_then_recovers_with_counters_rebuilt_and_no_overshoot()
    {
        var f = await RedisOutageDrill.RunAsync(cluster);
        // Served during the fault, but never more than the per-replica local limit; the rest are 429s.
        Assert.InRange(f.Admissions.GetValueOrDefault("admitted_locally"), 1, FailOpenReplica.LocalLimit);
        Assert.True(f.ServedDuringFault <= FailOpenReplica.LocalLimit + f.Admissions.GetValueOrDefault("admitted_leased"));
        Assert.All(f.Outcomes.Where(x => x.Started >= f.KilledAt && x.Started < f.RestartedAt && x.Status != 200),
            x => Assert.Equal("rate_limit_exceeded", x.Code));
        Assert.True(f.ServedAfter > 10);
        // Served on the local limit: measured as admitted_locally; the local limit's 429s as refused.
        Assert.True(f.Admissions.GetValueOrDefault("admitted_locally") + f.Admissions.GetValueOrDefault("admitted_leased") >= f.ServedDuringFault);
        Assert.True(f.Admissions.GetValueOrDefault("refused") >= f.RefusedDuringFault);
    }
}
