using ModelGateway.Api.Storage;
using Npgsql;
using NpgsqlTypes;

namespace ModelGateway.Api.Ledger;

/// <summary>
/// Stores ledger rows with one multi-row <c>INSERT ... SELECT FROM unnest(...)</c> per batch (one round trip, one
/// transaction). Not COPY: a retried batch skips rows already stored with <c>ON CONFLICT (id) DO NOTHING</c>, which COPY
/// cannot, and COPY was no quicker here (docs/benchmark.md, session 12).
/// </summary>
internal sealed class LedgerSink(NpgsqlDataSource db) : IBatchSink<LedgerRow>
{
    private const string Insert = """
        INSERT INTO usage_ledger (id, tenant_id, key_id, alias, provider, upstream_model, input_tokens, output_tokens,
            cached_tokens, cost_micro, status, http_status, latency_ms, trace_id, stream, usage_estimated, redis_epoch, created_at)
        SELECT * FROM unnest(@ids, @tenants, @keys, @aliases, @providers, @models, @inputs, @outputs, @cached, @costs,
            @statuses, @httpStatuses, @latencies, @traces, @streams, @estimated, @epochs, @times)
        """;

    private const string InsertSkippingStored = Insert + PostgresData.SkipStored;

    public bool IsRejection(Exception exception) => Storage.PostgresData.IsRejection(exception);

    public string Describe(LedgerRow record) => $"ledger row {record.Id} (tenant {record.TenantId})";

    public async Task WriteAsync(IReadOnlyList<LedgerRow> batch, bool retry, CancellationToken cancellationToken)
    {
        var n = batch.Count;
        var ids = new Guid[n];
        var tenants = new string[n];
        var keys = new string[n];
        var aliases = new string[n];
        var providers = new string?[n];
        var models = new string?[n];
        var inputs = new int[n];
        var outputs = new int[n];
        var cached = new int[n];
        var costs = new long[n];
        var statuses = new string[n];
        var httpStatuses = new int[n];
        var latencies = new double[n];
        var traces = new string?[n];
        var streams = new bool[n];
        var estimated = new bool[n];
        var epochs = new string?[n];
        var times = new DateTime[n];
        for (var i = 0; i < n; i++)
        {
            var r = batch[i];
            ids[i] = r.Id;
            tenants[i] = r.TenantId;
            keys[i] = r.KeyId;
            aliases[i] = r.Alias;
            providers[i] = r.Provider;
            models[i] = r.UpstreamModel;
            inputs[i] = r.InputTokens;
            outputs[i] = r.OutputTokens;
            cached[i] = r.CachedTokens;
            costs[i] = r.CostMicroUsd;
            statuses[i] = r.Status;
            httpStatuses[i] = r.HttpStatus;
            latencies[i] = r.LatencyMs;
            traces[i] = r.TraceId;
            streams[i] = r.Stream;
            estimated[i] = r.UsageEstimated;
            epochs[i] = r.RedisEpoch;
            times[i] = r.CreatedAt.UtcDateTime;
        }
        await using var cmd = db.CreateCommand(retry ? InsertSkippingStored : Insert);
        cmd.Parameters.AddWithValue("ids", ids);
        cmd.Parameters.AddWithValue("tenants", tenants);
        cmd.Parameters.AddWithValue("keys", keys);
        cmd.Parameters.AddWithValue("aliases", aliases);
        cmd.Parameters.AddWithValue("providers", NpgsqlDbType.Array | NpgsqlDbType.Text, providers);
        cmd.Parameters.AddWithValue("models", NpgsqlDbType.Array | NpgsqlDbType.Text, models);
        cmd.Parameters.AddWithValue("inputs", inputs);
        cmd.Parameters.AddWithValue("outputs", outputs);
        cmd.Parameters.AddWithValue("cached", cached);
        cmd.Parameters.AddWithValue("costs", costs);
        cmd.Parameters.AddWithValue("statuses", statuses);
        cmd.Parameters.AddWithValue("httpStatuses", httpStatuses);
        cmd.Parameters.AddWithValue("latencies", latencies);
        cmd.Parameters.AddWithValue("traces", NpgsqlDbType.Array | NpgsqlDbType.Text, traces);
        cmd.Parameters.AddWithValue("streams", streams);
        cmd.Parameters.AddWithValue("estimated", estimated);
        cmd.Parameters.AddWithValue("epochs", NpgsqlDbType.Array | NpgsqlDbType.Text, epochs);
        cmd.Parameters.AddWithValue("times", NpgsqlDbType.Array | NpgsqlDbType.TimestampTz, times);
        await PostgresData.ExecuteOnOwnThreadAsync(cmd, cancellationToken);
    }
}
