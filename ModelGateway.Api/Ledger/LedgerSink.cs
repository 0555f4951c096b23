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

    /// <summary>One batch as the insert's array parameters (Npgsql writes a <see cref="List{T}"/> as an array).</summary>
    private sealed class Columns : BatchColumns<LedgerRow>
    {
        private readonly List<Guid> _ids = [];
        private readonly List<string> _tenants = [];
        private readonly List<string> _keys = [];
        private readonly List<string> _aliases = [];
        private readonly List<string?> _providers = [];
        private readonly List<string?> _models = [];
        private readonly List<int> _inputs = [];
        private readonly List<int> _outputs = [];
        private readonly List<int> _cached = [];
        private readonly List<long> _costs = [];
        private readonly List<string> _statuses = [];
        private readonly List<int> _httpStatuses = [];
        private readonly List<double> _latencies = [];
        private readonly List<string?> _traces = [];
        private readonly List<bool> _streams = [];
        private readonly List<bool> _estimated = [];
        private readonly List<string?> _epochs = [];
        private readonly List<DateTime> _times = [];

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
                _traces.Add(r.TraceId);
                _streams.Add(r.Stream);
                _estimated.Add(r.UsageEstimated);
                _epochs.Add(r.RedisEpoch);
                _times.Add(r.CreatedAt.UtcDateTime);
            }
        }

        public override void Bind(NpgsqlParameterCollection p)
        {
            p.AddWithValue("ids", NpgsqlDbType.Array | NpgsqlDbType.Uuid, _ids);
            p.AddWithValue("tenants", NpgsqlDbType.Array | NpgsqlDbType.Text, _tenants);
            p.AddWithValue("keys", NpgsqlDbType.Array | NpgsqlDbType.Text, _keys);
            p.AddWithValue("aliases", NpgsqlDbType.Array | NpgsqlDbType.Text, _aliases);
            p.AddWithValue("providers", NpgsqlDbType.Array | NpgsqlDbType.Text, _providers);
            p.AddWithValue("models", NpgsqlDbType.Array | NpgsqlDbType.Text, _models);
            p.AddWithValue("inputs", NpgsqlDbType.Array | NpgsqlDbType.Integer, _inputs);
            p.AddWithValue("outputs", NpgsqlDbType.Array | NpgsqlDbType.Integer, _outputs);
            p.AddWithValue("cached", NpgsqlDbType.Array | NpgsqlDbType.Integer, _cached);
            p.AddWithValue("costs", NpgsqlDbType.Array | NpgsqlDbType.Bigint, _costs);
            p.AddWithValue("statuses", NpgsqlDbType.Array | NpgsqlDbType.Text, _statuses);
            p.AddWithValue("httpStatuses", NpgsqlDbType.Array | NpgsqlDbType.Integer, _httpStatuses);
            p.AddWithValue("latencies", NpgsqlDbType.Array | NpgsqlDbType.Double, _latencies);
            p.AddWithValue("traces", NpgsqlDbType.Array | NpgsqlDbType.Text, _traces);
            p.AddWithValue("streams", NpgsqlDbType.Array | NpgsqlDbType.Boolean, _streams);
            p.AddWithValue("estimated", NpgsqlDbType.Array | NpgsqlDbType.Boolean, _estimated);
            p.AddWithValue("epochs", NpgsqlDbType.Array | NpgsqlDbType.Text, _epochs);
            p.AddWithValue("times", NpgsqlDbType.Array | NpgsqlDbType.TimestampTz, _times);
        }

        public override bool TryReset()
        {
            _ids.Clear(); _tenants.Clear(); _keys.Clear(); _aliases.Clear(); _providers.Clear(); _models.Clear(); _inputs.Clear();
            _outputs.Clear(); _cached.Clear(); _costs.Clear(); _statuses.Clear(); _httpStatuses.Clear(); _latencies.Clear();
            _traces.Clear(); _streams.Clear(); _estimated.Clear(); _epochs.Clear(); _times.Clear();
            return true;
        }
    }
}
