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
    /// One batch as the insert's array parameters. The attempts' JSON is written into one buffer and passed as slices of it,
    /// not as a string per trace.
    /// </summary>
    private sealed class Columns : BatchColumns<TraceRecord>
    {
        private readonly BatchColumn<Guid> _ids = new("ids", NpgsqlDbType.Uuid);
        private readonly BatchColumn<string> _traceIds = new("traceIds", NpgsqlDbType.Text);
        private readonly BatchColumn<DateTime> _times = new("times", NpgsqlDbType.TimestampTz);
        private readonly BatchColumn<string> _tenants = new("tenants", NpgsqlDbType.Text);
        private readonly BatchColumn<string> _keys = new("keys", NpgsqlDbType.Text);
        private readonly BatchColumn<string?> _aliases = new("aliases", NpgsqlDbType.Text);
        private readonly BatchColumn<ReadOnlyMemory<char>> _attempts = new("attempts", NpgsqlDbType.Jsonb);
        private readonly BatchColumn<string?> _providers = new("providers", NpgsqlDbType.Text);
        private readonly BatchColumn<string?> _models = new("models", NpgsqlDbType.Text);
        private readonly BatchColumn<string> _statuses = new("statuses", NpgsqlDbType.Text);
        private readonly BatchColumn<int> _httpStatuses = new("httpStatuses", NpgsqlDbType.Integer);
        private readonly BatchColumn<double?> _ttfts = new("ttfts", NpgsqlDbType.Double);
        private readonly BatchColumn<double> _latencies = new("latencies", NpgsqlDbType.Double);
        private readonly BatchColumn<int> _inputs = new("inputs", NpgsqlDbType.Integer);
        private readonly BatchColumn<int> _outputs = new("outputs", NpgsqlDbType.Integer);
        private readonly BatchColumn<int> _cached = new("cached", NpgsqlDbType.Integer);
        private readonly BatchColumn<long> _costs = new("costs", NpgsqlDbType.Bigint);
        private readonly BatchColumn<bool> _streams = new("streams", NpgsqlDbType.Boolean);
        private readonly BatchColumn<string?> _structured = new("structured", NpgsqlDbType.Jsonb);
        private readonly ArrayBufferWriter<byte> _json = new(256);
        private readonly Utf8JsonWriter _writer;
        private readonly List<int> _attemptsEnd = [];
        private char[] _text = new char[16 * 1024];

        public Columns()
        {
            _writer = new Utf8JsonWriter(_json);
            All =
            [
                _ids, _traceIds, _times, _tenants, _keys, _aliases, _attempts, _providers, _models, _statuses, _httpStatuses,
                _ttfts, _latencies, _inputs, _outputs, _cached, _costs, _streams, _structured,
            ];
        }

        public override void Fill(IReadOnlyList<TraceRecord> batch)
        {
            var used = 0;
            for (var i = 0; i < batch.Count; i++)
            {
                var r = batch[i];
                _ids.Add(r.Id);
                _traceIds.Add(r.TraceId.ToString());
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


        public override bool TryReset()
        {
            _attemptsEnd.Clear();
            return base.TryReset();
        }

        /// <summary>Writes the attempts as a JSON array after <paramref name="used"/> chars of the text buffer; returns its end.</summary>
        private int AppendAttempts(AttemptLog attempts, int used)
        {
            _json.ResetWrittenCount();
            _writer.Reset(_json);
            _writer.WriteStartArray();
            for (var i = 0; i < attempts.Count; i++) // by index: the log's enumerator is an iterator object
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
