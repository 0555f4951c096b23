using System.Net;
using ModelGateway.Api.Tests.Budgets;

namespace ModelGateway.Api.Tests.Reliability;

/// <summary>One replica with a Postgres server of its own (the test stops it); the trace buffer is the smaller bound.</summary>
public sealed class PostgresOutageReplica : BudgetCluster
{
    public const string Key = "sk-pg-outage-0123456789";
    public const int TraceCapacity = 100;

    protected override bool OwnPostgres => true;

    protected override int Replicas => 1;

    protected override IEnumerable<KeyValuePair<string, string?>> Tenants => new Dictionary<string, string?>
    {
        ["Tenancy:Seed:1:Id"] = "pgout",
        ["Tenancy:Seed:1:ApiKeys:0"] = Key,
        ["Tenancy:Seed:1:BudgetUsd"] = "100",
        ["Ledger:Capacity"] = "1000",
        ["Ledger:MaxRetryDelay"] = "00:00:00.200",
        ["Traces:Capacity"] = TraceCapacity.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["Traces:FlushInterval"] = "00:00:00.050",
        ["Traces:MaxRetryDelay"] = "00:00:00.200",
        // Shorter than the outage: keys verified before it keep working (stale-if-error) after the TTL runs out.
        ["Tenancy:KeyCacheTtl"] = "00:00:01",
    };
}

/// <summary>
/// Postgres stopped and started again under load: requests keep being served from the buffers, the smaller buffer (traces
/// here) refuses new work with 503 once full, and afterwards every served request has its ledger row and every
/// authenticated request its trace: counted, zero lost.
/// </summary>
public sealed class PostgresOutageTests(PostgresOutageReplica cluster) : IClassFixture<PostgresOutageReplica>
{
    [Fact]
    public async Task Postgres_stopped_under_load_keeps_serving_within_the_buffers_and_loses_no_ledger_or_trace_row()
    {
        await using var drill = new OutageDrill(cluster.A, PostgresOutageReplica.Key, workers: 4, pauseMs: 60);
        drill.Start();
        await drill.WaitUntilAsync(o => o.Count(x => x.Status == 200) >= 20, TimeSpan.FromSeconds(60), "20 requests served before the fault");

        cluster.Postgres.Stop(); // returns once the server is gone
        var stoppedAt = DateTime.UtcNow;
        await drill.WaitUntilAsync(o => o.Count(x => x.Code == "trace_unavailable") >= 20, TimeSpan.FromSeconds(60), "the trace buffer to fill");
        await Task.Delay(TimeSpan.FromSeconds(1.5), TestContext.Current.CancellationToken); // beyond the key cache TTL
        var restartedAt = DateTime.UtcNow;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await Task.Delay(300, TestContext.Current.CancellationToken);
                await cluster.Postgres.StartAgainAsync();
                break;
            }
            catch (Exception) when (attempt < 10)
            {
            }
        }
        await drill.WaitUntilAsync(o => o.Count(x => x.Status == 200 && x.Started > restartedAt) >= 20, TimeSpan.FromSeconds(60), "recovery");
        await drill.DisposeAsync();

        var outcomes = drill.Outcomes.ToList();
        var during = outcomes.Where(x => x.Started >= stoppedAt && x.Started < restartedAt).ToList();
        var served = outcomes.Count(x => x.Status == 200);
        var traced = outcomes.Count(x => x.Code != "trace_unavailable");
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"served during the outage={during.Count(x => x.Status == 200)} refused during={during.Count(x => x.Status != 200)}; " +
            $"total served={served} traced={traced}; {drill.Summary()}");

        Assert.All(outcomes.Where(x => x.Status != 200), x =>
        {
            Assert.Equal(503, x.Status);
            Assert.True(x.Code is "trace_unavailable" or "ledger_unavailable", x.Code);
            Assert.True(x.HasRetryAfter || x.Code == "trace_unavailable", "ledger refusals say when to retry");
        });
        // Served from the buffer while Postgres was down, but never more than the buffer holds.
        Assert.InRange(during.Count(x => x.Status == 200), 1, PostgresOutageReplica.TraceCapacity);

        var (rows, _) = await cluster.LedgerAsync("pgout", served);
        var traces = await WaitForTracesAsync(traced);
        TestContext.Current.TestOutputHelper?.WriteLine($"ledger rows={rows} of {served} served (lost {served - rows}); trace rows={traces} of {traced} traced (lost {traced - traces})");
        Assert.Equal(served, rows);
        Assert.Equal(traced, traces);
    }

    private async Task<long> WaitForTracesAsync(long expected)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            var n = await cluster.ScalarAsync<long>("SELECT count(*) FROM traces WHERE tenant_id = 'pgout'");
            if (n >= expected || DateTime.UtcNow > deadline)
            {
                return n;
            }
            await Task.Delay(200, TestContext.Current.CancellationToken);
        }
    }
}
