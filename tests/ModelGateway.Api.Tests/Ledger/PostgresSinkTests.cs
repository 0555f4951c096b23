using ModelGateway.Api.Ledger;
using ModelGateway.Api.Storage;
using ModelGateway.Api.Tracing;
using ModelGateway.Policy.Rules;
using ModelGateway.Testing;
using Npgsql;

namespace ModelGateway.Api.Tests.Ledger;

/// <summary>The Postgres sinks against a real Postgres: a first attempt inserts plainly, a retry skips what is stored.</summary>
public sealed class PostgresSinkTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_first_attempt_refuses_a_stored_row_as_data_and_a_retry_skips_it_so_each_row_is_stored_once()
    {
        var server = await PostgresServer.GetSharedAsync();
        await using var db = NpgsqlDataSource.Create(await server.CreateDatabaseAsync("sinks"));
        await Migrations.ApplyAsync(db, Ct);
        var now = DateTimeOffset.UtcNow;
        LedgerRow Row(int i) => new(Uuid7.New(now.AddMilliseconds(i)), "t1", "k1", "chat", "p", "m", 10, 5, 0, 100 + i, "ok", 200, 1.5,
            null, false, false, null, now);
        TraceRecord Trace(int i) => new(Uuid7.New(now.AddMilliseconds(i)), $"trace{i}", now, "t1", "k1", "chat", [], "p", "m", "ok", 200,
            null, 1.5, 10, 5, 0, 100 + i, false, null);
        var ledger = new LedgerSink(db);
        var traces = new TraceSink(db);
        LedgerRow[] rows = [Row(1), Row(2)];
        TraceRecord[] records = [Trace(1), Trace(2)];
        await ledger.WriteAsync(rows, retry: false, Ct);
        await traces.WriteAsync(records, retry: false, Ct);

        // The same rows again, with one new: as a first attempt the store refuses the batch as data (the writer then stores it
        // record by record as retries); as a retry it stores only the new one.
        LedgerRow[] again = [.. rows, Row(3)];
        TraceRecord[] againTraces = [.. records, Trace(3)];
        var refused = await Assert.ThrowsAsync<PostgresException>(() => ledger.WriteAsync(again, retry: false, Ct));
        Assert.True(ledger.IsRejection(refused));
        Assert.True(traces.IsRejection(await Assert.ThrowsAsync<PostgresException>(() => traces.WriteAsync(againTraces, retry: false, Ct))));
        await ledger.WriteAsync(again, retry: true, Ct);
        await traces.WriteAsync(againTraces, retry: true, Ct);

        await using var count = db.CreateCommand("SELECT (SELECT count(*) FROM usage_ledger), (SELECT sum(cost_micro) FROM usage_ledger), (SELECT count(*) FROM traces)");
        await using var reader = await count.ExecuteReaderAsync(Ct);
        Assert.True(await reader.ReadAsync(Ct));
        Assert.Equal(3, reader.GetInt64(0));
        Assert.Equal(101 + 102 + 103, reader.GetInt64(1));
        Assert.Equal(3, reader.GetInt64(2));
    }
}
