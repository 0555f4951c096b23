using ModelGateway.Api.Ledger;
using ModelGateway.Api.Routing;
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
        TraceRecord Trace(int i) => new(Uuid7.New(now.AddMilliseconds(i)), TraceIdOf(i), now, "t1", "k1", "chat", default, "p", "m", "ok", 200,
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

    [Fact]
    public async Task Each_row_of_a_batch_gets_its_own_values_and_a_reused_sink_carries_nothing_over_to_the_next_batch()
    {
        var server = await PostgresServer.GetSharedAsync();
        await using var db = NpgsqlDataSource.Create(await server.CreateDatabaseAsync("sinkcolumns"));
        await Migrations.ApplyAsync(db, Ct);
        var now = DateTimeOffset.UtcNow;
        var traces = new TraceSink(db);
        var ledger = new LedgerSink(db);
        var longModel = new string('m', 300);
        TraceRecord Trace(int i, AttemptRecord[] attempts) => new(Uuid7.New(now.AddMilliseconds(i)), TraceIdOf(i),
            now.AddSeconds(i), "t1", "k1", "chat", AttemptLog.Of(attempts), "p", "m", "ok", 200, i % 2 == 0 ? null : i, i, i, 2 * i, 0, 10 * i, i % 2 == 1, null);
        // A batch with no attempts, one, two (one of them non-ASCII, one with text longer than a column keeps), and a
        // second batch through the same sink after the first has been stored.
        TraceRecord[] first =
        [
            Trace(1, []),
            Trace(2, [new AttemptRecord(1, "p", "m", 200, 12.34, null)]),
            Trace(3, [new AttemptRecord(1, "p", "modèle-é", 503, 7, "upstream_error"), new AttemptRecord(2, "q", longModel, null, 1, "timeout")]),
        ];
        TraceRecord[] second = [Trace(4, [new AttemptRecord(1, "r", "n", 200, 3, null)])];
        await traces.WriteAsync(first, retry: false, Ct);
        await traces.WriteAsync(second, retry: false, Ct);
        await ledger.WriteAsync([new LedgerRow(Uuid7.New(now), "t1", "k1", "chat", "p", "m", 1, 2, 0, 30, "ok", 200, 1, TraceIdOf(1), true, false, "e1", now)], false, Ct);
        await ledger.WriteAsync([new LedgerRow(Uuid7.New(now.AddSeconds(1)), "t2", "k2", "other", null, null, 3, 4, 1, 50, "error", 502, 2, null, false, true, null, now)], false, Ct);

        await using var read = db.CreateCommand("""
            SELECT trace_id, attempts::text, ttft_ms, latency_ms, input_tokens, output_tokens, cost_micro, stream
            FROM traces ORDER BY ts
            """);
        var rows = new List<string>();
        await using (var reader = await read.ExecuteReaderAsync(Ct))
        {
            while (await reader.ReadAsync(Ct))
            {
                rows.Add($"{reader.GetString(0)} {reader.GetString(1)} {(reader.IsDBNull(2) ? "null" : reader.GetDouble(2))} {reader.GetDouble(3)} "
                    + $"{reader.GetInt32(4)} {reader.GetInt32(5)} {reader.GetInt64(6)} {reader.GetBoolean(7)}");
            }
        }
        Assert.Equal(
        [
            "000000000000000a0000000000000001 [] 1 1 1 2 10 True",
            """000000000000000a0000000000000002 [{"error": null, "model": "m", "number": 1, "status": 200, "provider": "p", "latency_ms": 12.3}] null 2 2 4 20 False""",
            $$"""000000000000000a0000000000000003 [{"error": "upstream_error", "model": "modèle-é", "number": 1, "status": 503, "provider": "p", "latency_ms": 7}, {"error": "timeout", "model": "{{new string('m', 256)}}", "number": 2, "status": null, "provider": "q", "latency_ms": 1}] 3 3 3 6 30 True""",
            """000000000000000a0000000000000004 [{"error": null, "model": "n", "number": 1, "status": 200, "provider": "r", "latency_ms": 3}] null 4 4 8 40 False""",
        ], rows);

        await using var readLedger = db.CreateCommand("""
            SELECT tenant_id, alias, coalesce(provider, '-'), input_tokens, output_tokens, cached_tokens, cost_micro, status, http_status,
                coalesce(trace_id, '-'), stream, usage_estimated, coalesce(redis_epoch, '-')
            FROM usage_ledger ORDER BY created_at, tenant_id
            """);
        var ledgerRows = new List<string>();
        await using (var reader = await readLedger.ExecuteReaderAsync(Ct))
        {
            while (await reader.ReadAsync(Ct))
            {
                ledgerRows.Add(string.Join(' ', Enumerable.Range(0, reader.FieldCount).Select(reader.GetValue)));
            }
        }
        Assert.Equal([$"t1 chat p 1 2 0 30 ok 200 {TraceIdOf(1)} True False e1", "t2 other - 3 4 1 50 error 502 - False True -"], ledgerRows);
    }

    /// <summary>A trace id whose text is fifteen zeros, "a", fifteen zeros and <paramref name="i"/> (for i below 10).</summary>
    private static W3CTraceId TraceIdOf(int i) => new(0xa, (ulong)i);
}
