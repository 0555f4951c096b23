using System.Buffers;
using System.Text;
using System.Text.Json;
using ModelGateway.Api.Ledger;
using ModelGateway.Api.Routing;
using ModelGateway.Api.Storage;
using Npgsql;
using NpgsqlTypes;

namespace ModelGateway.Api.Tracing;

/// <summary>
/// Stores traces like <see cref="LedgerSink"/> stores ledger rows: one <c>INSERT ... SELECT FROM unnest(...)</c> per batch,
/// a retried one idempotent through <c>ON CONFLICT (id) DO NOTHING</c>. Attempts become jsonb here, off the hot path, written by hand
/// (no reflection).
/// </summary>
internal sealed class TraceSink(NpgsqlDataSource db) : IBatchSink<TraceRecord>
{
    private const string Insert = """
        INSERT INTO traces (id, trace_id, ts, tenant_id, key_id, alias, attempts, provider, upstream_model, status, http_status,
            ttft_ms, latency_ms, input_tokens, output_tokens, cached_tokens, cost_micro, stream, structured_output)
        SELECT * FROM unnest(@ids, @traceIds, @times, @tenants, @keys, @aliases, @attempts, @providers, @models, @statuses,
            @httpStatuses, @ttfts, @latencies, @inputs, @outputs, @cached, @costs, @streams, @structured)
        """;

    private const string InsertSkippingStored = Insert + PostgresData.SkipStored;

    public bool IsRejection(Exception exception) => PostgresData.IsRejection(exception);

    public string Describe(TraceRecord record) => $"trace {record.Id} (trace id {record.TraceId}, tenant {record.TenantId})";

    public async Task WriteAsync(IReadOnlyList<TraceRecord> batch, bool retry, CancellationToken cancellationToken)
    {
        var n = batch.Count;
        var ids = new Guid[n];
        var traceIds = new string[n];
        var times = new DateTime[n];
        var tenants = new string[n];
        var keys = new string[n];
        var aliases = new string?[n];
        var attempts = new string[n];
        var providers = new string?[n];
        var models = new string?[n];
        var statuses = new string[n];
        var httpStatuses = new int[n];
        var ttfts = new double?[n];
        var latencies = new double[n];
        var inputs = new int[n];
        var outputs = new int[n];
        var cached = new int[n];
        var costs = new long[n];
        var streams = new bool[n];
        var structured = new string?[n];
        var buffer = new ArrayBufferWriter<byte>(256);
        for (var i = 0; i < n; i++)
        {
            var r = batch[i];
            ids[i] = r.Id;
            traceIds[i] = r.TraceId;
            times[i] = r.Ts.UtcDateTime;
            tenants[i] = r.TenantId;
            keys[i] = r.KeyId;
            aliases[i] = PostgresData.Text(r.Alias);
            attempts[i] = AttemptsJson(r.Attempts, buffer);
            providers[i] = PostgresData.Text(r.Provider);
            models[i] = PostgresData.Text(r.UpstreamModel);
            statuses[i] = r.Status;
            httpStatuses[i] = r.HttpStatus;
            ttfts[i] = r.TimeToFirstTokenMs;
            latencies[i] = r.LatencyMs;
            inputs[i] = r.InputTokens;
            outputs[i] = r.OutputTokens;
            cached[i] = r.CachedTokens;
            costs[i] = r.CostMicroUsd;
            streams[i] = r.Stream;
            structured[i] = r.StructuredOutput;
        }
        await using var cmd = db.CreateCommand(retry ? InsertSkippingStored : Insert);
        cmd.Parameters.AddWithValue("ids", ids);
        cmd.Parameters.AddWithValue("traceIds", traceIds);
        cmd.Parameters.AddWithValue("times", NpgsqlDbType.Array | NpgsqlDbType.TimestampTz, times);
        cmd.Parameters.AddWithValue("tenants", tenants);
        cmd.Parameters.AddWithValue("keys", keys);
        cmd.Parameters.AddWithValue("aliases", NpgsqlDbType.Array | NpgsqlDbType.Text, aliases);
        cmd.Parameters.AddWithValue("attempts", NpgsqlDbType.Array | NpgsqlDbType.Jsonb, attempts);
        cmd.Parameters.AddWithValue("providers", NpgsqlDbType.Array | NpgsqlDbType.Text, providers);
        cmd.Parameters.AddWithValue("models", NpgsqlDbType.Array | NpgsqlDbType.Text, models);
        cmd.Parameters.AddWithValue("statuses", statuses);
        cmd.Parameters.AddWithValue("httpStatuses", httpStatuses);
        cmd.Parameters.AddWithValue("ttfts", NpgsqlDbType.Array | NpgsqlDbType.Double, ttfts);
        cmd.Parameters.AddWithValue("latencies", latencies);
        cmd.Parameters.AddWithValue("inputs", inputs);
        cmd.Parameters.AddWithValue("outputs", outputs);
        cmd.Parameters.AddWithValue("cached", cached);
        cmd.Parameters.AddWithValue("costs", costs);
        cmd.Parameters.AddWithValue("streams", streams);
        cmd.Parameters.AddWithValue("structured", NpgsqlDbType.Array | NpgsqlDbType.Jsonb, structured);
        await PostgresData.ExecuteOnOwnThreadAsync(cmd, cancellationToken);
    }

    private static string AttemptsJson(IReadOnlyList<AttemptRecord> attempts, ArrayBufferWriter<byte> buffer)
    {
        buffer.ResetWrittenCount();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartArray();
            for (var i = 0; i < attempts.Count; i++) // by index: a foreach over the interface boxes the enumerator
            {
                var a = attempts[i];
                w.WriteStartObject();
                w.WriteNumber("number", a.Number);
                w.WriteString("provider", PostgresData.Text(a.Provider));
                w.WriteString("model", PostgresData.Text(a.Model));
                if (a.Status is { } status)
                {
                    w.WriteNumber("status", status);
                }
                else
                {
                    w.WriteNull("status");
                }
                w.WriteNumber("latency_ms", Math.Round(a.LatencyMs, 1));
                w.WriteString("error", PostgresData.Text(a.ErrorType));
                w.WriteEndObject();
            }
            w.WriteEndArray();
        }
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }
}
