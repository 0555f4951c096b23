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

    public bool IsRejection(Exception exception) => PostgresData.IsRejection(exception);

    public string Describe(TraceRecord record) => $"trace {record.Id} (trace id {record.TraceId}, tenant {record.TenantId})";

    private readonly BatchInsert<TraceRecord, Columns> _insert = new(db, Insert);

    public Task WriteAsync(IReadOnlyList<TraceRecord> batch, bool retry, CancellationToken cancellationToken) =>
        _insert.WriteAsync(batch, retry, cancellationToken);

    /// <summary>
    /// One batch as the insert's array parameters (Npgsql writes a <see cref="List{T}"/> as an array). The attempts' JSON
    /// is written into one buffer and passed as slices of it, not as a string per trace.
    /// </summary>
    private sealed class Columns : BatchColumns<TraceRecord>
    {
        private readonly List<Guid> _ids = [];
        private readonly List<string> _traceIds = [];
        private readonly List<DateTime> _times = [];
        private readonly List<string> _tenants = [];
        private readonly List<string> _keys = [];
        private readonly List<string?> _aliases = [];
        private readonly List<ReadOnlyMemory<char>> _attempts = [];
        private readonly List<string?> _providers = [];
        private readonly List<string?> _models = [];
        private readonly List<string> _statuses = [];
        private readonly List<int> _httpStatuses = [];
        private readonly List<double?> _ttfts = [];
        private readonly List<double> _latencies = [];
        private readonly List<int> _inputs = [];
        private readonly List<int> _outputs = [];
        private readonly List<int> _cached = [];
        private readonly List<long> _costs = [];
        private readonly List<bool> _streams = [];
        private readonly List<string?> _structured = [];
        private readonly ArrayBufferWriter<byte> _json = new(256);
        private readonly Utf8JsonWriter _writer;
        private readonly List<int> _attemptsEnd = [];
        private char[] _text = new char[16 * 1024];

        public Columns() => _writer = new Utf8JsonWriter(_json);

        public override void Fill(IReadOnlyList<TraceRecord> batch)
        {
            var used = 0;
            for (var i = 0; i < batch.Count; i++)
            {
                var r = batch[i];
                _ids.Add(r.Id);
                _traceIds.Add(r.TraceId);
                _times.Add(r.Ts.UtcDateTime);
                _tenants.Add(r.TenantId);
                _keys.Add(r.KeyId);
                _aliases.Add(PostgresData.Text(r.Alias));
                used = AppendAttempts(r.Attempts, used);
                _attemptsEnd.Add(used);
                _providers.Add(PostgresData.Text(r.Provider));
                _models.Add(PostgresData.Text(r.UpstreamModel));
                _statuses.Add(r.Status);
                _httpStatuses.Add(r.HttpStatus);
                _ttfts.Add(r.TimeToFirstTokenMs);
                _latencies.Add(r.LatencyMs);
                _inputs.Add(r.InputTokens);
                _outputs.Add(r.OutputTokens);
                _cached.Add(r.CachedTokens);
                _costs.Add(r.CostMicroUsd);
                _streams.Add(r.Stream);
                _structured.Add(r.StructuredOutput);
            }
            // Sliced once the buffer has stopped growing, so every slice is of the same array.
            var start = 0;
            foreach (var end in _attemptsEnd)
            {
                _attempts.Add(_text.AsMemory(start, end - start));
                start = end;
            }
        }

        public override void Bind(NpgsqlParameterCollection p)
        {
            p.AddWithValue("ids", NpgsqlDbType.Array | NpgsqlDbType.Uuid, _ids);
            p.AddWithValue("traceIds", NpgsqlDbType.Array | NpgsqlDbType.Text, _traceIds);
            p.AddWithValue("times", NpgsqlDbType.Array | NpgsqlDbType.TimestampTz, _times);
            p.AddWithValue("tenants", NpgsqlDbType.Array | NpgsqlDbType.Text, _tenants);
            p.AddWithValue("keys", NpgsqlDbType.Array | NpgsqlDbType.Text, _keys);
            p.AddWithValue("aliases", NpgsqlDbType.Array | NpgsqlDbType.Text, _aliases);
            p.AddWithValue("attempts", NpgsqlDbType.Array | NpgsqlDbType.Jsonb, _attempts);
            p.AddWithValue("providers", NpgsqlDbType.Array | NpgsqlDbType.Text, _providers);
            p.AddWithValue("models", NpgsqlDbType.Array | NpgsqlDbType.Text, _models);
            p.AddWithValue("statuses", NpgsqlDbType.Array | NpgsqlDbType.Text, _statuses);
            p.AddWithValue("httpStatuses", NpgsqlDbType.Array | NpgsqlDbType.Integer, _httpStatuses);
            p.AddWithValue("ttfts", NpgsqlDbType.Array | NpgsqlDbType.Double, _ttfts);
            p.AddWithValue("latencies", NpgsqlDbType.Array | NpgsqlDbType.Double, _latencies);
            p.AddWithValue("inputs", NpgsqlDbType.Array | NpgsqlDbType.Integer, _inputs);
            p.AddWithValue("outputs", NpgsqlDbType.Array | NpgsqlDbType.Integer, _outputs);
            p.AddWithValue("cached", NpgsqlDbType.Array | NpgsqlDbType.Integer, _cached);
            p.AddWithValue("costs", NpgsqlDbType.Array | NpgsqlDbType.Bigint, _costs);
            p.AddWithValue("streams", NpgsqlDbType.Array | NpgsqlDbType.Boolean, _streams);
            p.AddWithValue("structured", NpgsqlDbType.Array | NpgsqlDbType.Jsonb, _structured);
        }

        public override bool TryReset()
        {
            _ids.Clear(); _traceIds.Clear(); _times.Clear(); _tenants.Clear(); _keys.Clear(); _aliases.Clear(); _attempts.Clear();
            _providers.Clear(); _models.Clear(); _statuses.Clear(); _httpStatuses.Clear(); _ttfts.Clear(); _latencies.Clear();
            _inputs.Clear(); _outputs.Clear(); _cached.Clear(); _costs.Clear(); _streams.Clear(); _structured.Clear();
            _attemptsEnd.Clear();
            return true;
        }

        /// <summary>Writes the attempts as a JSON array after <paramref name="used"/> chars of the text buffer; returns its end.</summary>
        private int AppendAttempts(IReadOnlyList<AttemptRecord> attempts, int used)
        {
            _json.ResetWrittenCount();
            _writer.Reset(_json);
            _writer.WriteStartArray();
            for (var i = 0; i < attempts.Count; i++) // by index: a foreach over the interface boxes the enumerator
            {
                var a = attempts[i];
                _writer.WriteStartObject();
                _writer.WriteNumber("number", a.Number);
                _writer.WriteString("provider", PostgresData.Text(a.Provider));
                _writer.WriteString("model", PostgresData.Text(a.Model));
                if (a.Status is { } status)
                {
                    _writer.WriteNumber("status", status);
                }
                else
                {
                    _writer.WriteNull("status");
                }
                _writer.WriteNumber("latency_ms", Math.Round(a.LatencyMs, 1));
                _writer.WriteString("error", PostgresData.Text(a.ErrorType));
                _writer.WriteEndObject();
            }
            _writer.WriteEndArray();
            _writer.Flush();
            var needed = used + Encoding.UTF8.GetMaxCharCount(_json.WrittenCount);
            if (needed > _text.Length)
            {
                Array.Resize(ref _text, Math.Max(needed, _text.Length * 2));
            }
            return used + Encoding.UTF8.GetChars(_json.WrittenSpan, _text.AsSpan(used));
        }
    }
}
