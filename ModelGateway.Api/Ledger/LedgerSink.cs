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

    public bool IsRejection(Exception exception) => Storage.PostgresData.IsRejection(exception);

    public string Describe(LedgerRow record) => $"ledger row {record.Id} (tenant {record.TenantId})";

    private readonly BatchInsert<LedgerRow, Columns> _insert = new(db, Insert);

    public Task WriteAsync(IReadOnlyList<LedgerRow> batch, bool retry, CancellationToken cancellationToken) =>
        _insert.WriteAsync(batch, retry, cancellationToken);

    /// <summary>One batch as the insert's array parameters.</summary>
    private sealed class Columns : BatchColumns<LedgerRow>
    {
        private readonly BatchColumn<Guid> _ids = new("ids", NpgsqlDbType.Uuid);
        private readonly BatchColumn<string> _tenants = new("tenants", NpgsqlDbType.Text);
        private readonly BatchColumn<string> _keys = new("keys", NpgsqlDbType.Text);
        private readonly BatchColumn<string> _aliases = new("aliases", NpgsqlDbType.Text);
        private readonly BatchColumn<string?> _providers = new("providers", NpgsqlDbType.Text);
        private readonly BatchColumn<string?> _models = new("models", NpgsqlDbType.Text);
        private readonly BatchColumn<int> _inputs = new("inputs", NpgsqlDbType.Integer);
        private readonly BatchColumn<int> _outputs = new("outputs", NpgsqlDbType.Integer);
        private readonly BatchColumn<int> _cached = new("cached", NpgsqlDbType.Integer);
        private readonly BatchColumn<long> _costs = new("costs", NpgsqlDbType.Bigint);
        private readonly BatchColumn<string> _statuses = new("statuses", NpgsqlDbType.Text);
        private readonly BatchColumn<int> _httpStatuses = new("httpStatuses", NpgsqlDbType.Integer);
        private readonly BatchColumn<double> _latencies = new("latencies", NpgsqlDbType.Double);
        private readonly BatchColumn<string?> _traces = new("traces", NpgsqlDbType.Text);
        private readonly BatchColumn<bool> _streams = new("streams", NpgsqlDbType.Boolean);
        private readonly BatchColumn<bool> _estimated = new("estimated", NpgsqlDbType.Boolean);
        private readonly BatchColumn<string?> _epochs = new("epochs", NpgsqlDbType.Text);
        private readonly BatchColumn<DateTime> _times = new("times", NpgsqlDbType.TimestampTz);

        public Columns() => All =
        [
            _ids, _tenants, _keys, _aliases, _providers, _models, _inputs, _outputs, _cached, _costs, _statuses,
            _httpStatuses, _latencies, _traces, _streams, _estimated, _epochs, _times,
        ];

        public override void Fill(IReadOnlyList<LedgerRow> batch)
        {
            for (var i = 0; i < batch.Count; i++)
            {
                var r = batch[i];
                _ids.Add(r.Id);
                _tenants.Add(r.TenantId);
                _keys.Add(r.KeyId);
                _aliases.Add(r.Alias);
                _providers.Add(r.Provider);
                _models.Add(r.UpstreamModel);
                _inputs.Add(r.InputTokens);
                _outputs.Add(r.OutputTokens);
                _cached.Add(r.CachedTokens);
                _costs.Add(r.CostMicroUsd);
                _statuses.Add(r.Status);
                _httpStatuses.Add(r.HttpStatus);
                _latencies.Add(r.LatencyMs);
                _traces.Add(r.TraceId?.ToString());
                _streams.Add(r.Stream);
                _estimated.Add(r.UsageEstimated);
                _epochs.Add(r.RedisEpoch);
                _times.Add(r.CreatedAt.UtcDateTime);
            }
        }

    }
}
