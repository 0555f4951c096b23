using System.Text.Json.Nodes;
using Npgsql;

namespace ModelGateway.Api.Ledger;

/// <summary>
/// Reads of the usage ledger for <c>GET /api/tenants</c>, <c>/api/tenants/{id}</c> and <c>/api/stats</c>. The ledger is
/// the record (Redis holds only the live counters), so these figures lag the hot path by at most the writer's flush interval.
/// Money is summed in micro-dollars and shown in USD.
/// </summary>
internal sealed class LedgerQueries(NpgsqlDataSource db, TimeProvider time)
{
    /// <summary>Each tenant (or just <paramref name="onlyTenant"/>) with its budget, this period's spend and all-time totals.</summary>
    public async Task<JsonArray> TenantSummariesAsync(string? onlyTenant, CancellationToken cancellationToken)
    {
        await using var cmd = db.CreateCommand("""
            WITH p AS (
                SELECT t.*, greatest(coalesce(t.spend_reset_at, '-infinity'),
                    CASE t.budget_period WHEN 'daily' THEN date_trunc('day', @now, 'UTC')
                                         WHEN 'monthly' THEN date_trunc('month', @now, 'UTC')
                                         ELSE '-infinity'::timestamptz END) AS period_start
                FROM tenants t WHERE @only::text IS NULL OR t.id = @only)
            SELECT p.id, p.name, p.budget_micro, p.budget_period, p.requests_per_minute, p.tokens_per_minute,
                   p.max_output_tokens, p.max_usd_per_request_micro, p.allowed_models,
                   coalesce(sum(l.cost_micro) FILTER (WHERE l.created_at >= p.period_start), 0)::bigint,
                   coalesce(sum(l.cost_micro), 0)::bigint, coalesce(sum(l.input_tokens), 0)::bigint,
                   coalesce(sum(l.output_tokens), 0)::bigint, count(l.id)
            FROM p LEFT JOIN usage_ledger l ON l.tenant_id = p.id
            GROUP BY p.id, p.name, p.budget_micro, p.budget_period, p.requests_per_minute, p.tokens_per_minute,
                     p.max_output_tokens, p.max_usd_per_request_micro, p.allowed_models, p.period_start
            ORDER BY p.id
            """);
        cmd.Parameters.AddWithValue("now", time.GetUtcNow());
        cmd.Parameters.Add(new NpgsqlParameter<string?>("only", NpgsqlTypes.NpgsqlDbType.Text) { TypedValue = onlyTenant });
        await using var reader = await cmd.ExecuteReaderAsync(cancellationToken);
        var result = new JsonArray();
        while (await reader.ReadAsync(cancellationToken))
        {
            var budget = reader.IsDBNull(2) ? (long?)null : reader.GetInt64(2);
            var spent = reader.GetInt64(9);
            result.Add(new JsonObject
            {
                ["id"] = reader.GetString(0),
                ["name"] = reader.GetString(1),
                ["budget_usd"] = Usd(budget),
                ["budget_period"] = reader.GetString(3),
                ["spend_usd"] = Usd(spent),
                ["remaining_usd"] = budget is { } b ? Usd(Math.Max(0, b - spent)) : null,
                ["requests_per_minute"] = reader.IsDBNull(4) ? null : reader.GetInt32(4),
                ["tokens_per_minute"] = reader.IsDBNull(5) ? null : reader.GetInt32(5),
                ["max_output_tokens"] = reader.IsDBNull(6) ? null : reader.GetInt32(6),
                ["max_usd_per_request"] = Usd(reader.IsDBNull(7) ? null : reader.GetInt64(7)),
                ["allowed_models"] = new JsonArray([.. reader.GetFieldValue<string[]>(8).Select(m => (JsonNode)m)]),
                ["total_cost_usd"] = Usd(reader.GetInt64(10)),
                ["tokens_in"] = reader.GetInt64(11),
                ["tokens_out"] = reader.GetInt64(12),
                ["requests"] = reader.GetInt64(13),
            });
        }
        return result;
    }

    /// <summary>A tenant's requests, newest first.</summary>
    public async Task<JsonArray> RecentRequestsAsync(string tenantId, int limit, int offset, CancellationToken cancellationToken)
    {
        await using var cmd = db.CreateCommand("""
            SELECT id, key_id, alias, provider, upstream_model, input_tokens, output_tokens, cached_tokens, cost_micro, status,
                   http_status, latency_ms, trace_id, stream, usage_estimated, created_at
            FROM usage_ledger WHERE tenant_id = @tenant ORDER BY created_at DESC, id DESC LIMIT @limit OFFSET @offset
            """);
        cmd.Parameters.AddWithValue("tenant", tenantId);
        cmd.Parameters.AddWithValue("limit", limit);
        cmd.Parameters.AddWithValue("offset", offset);
        await using var reader = await cmd.ExecuteReaderAsync(cancellationToken);
        var result = new JsonArray();
        while (await reader.ReadAsync(cancellationToken))
        {
            result.Add(new JsonObject
            {
                ["id"] = reader.GetGuid(0).ToString(),
                ["key_id"] = reader.GetString(1),
                ["model"] = reader.GetString(2),
                ["provider"] = reader.IsDBNull(3) ? null : reader.GetString(3),
                ["upstream_model"] = reader.IsDBNull(4) ? null : reader.GetString(4),
                ["tokens_in"] = reader.GetInt32(5),
                ["tokens_out"] = reader.GetInt32(6),
                ["cached_tokens"] = reader.GetInt32(7),
                ["cost_usd"] = Usd(reader.GetInt64(8)),
                ["cost_micro_usd"] = reader.GetInt64(8),
                ["status"] = reader.GetString(9),
                ["http_status"] = reader.GetInt32(10),
                ["latency_ms"] = Math.Round(reader.GetDouble(11), 1),
                ["trace_id"] = reader.IsDBNull(12) ? null : reader.GetString(12),
                ["stream"] = reader.GetBoolean(13),
                ["usage_estimated"] = reader.GetBoolean(14),
                ["time"] = reader.GetFieldValue<DateTimeOffset>(15),
            });
        }
        return result;
    }

    /// <summary>Totals over the ledger (all tenants, or one), by model alias and by status.</summary>
    public async Task<JsonObject> StatsAsync(string? onlyTenant, CancellationToken cancellationToken)
    {
        await using var cmd = db.CreateCommand("""
            SELECT alias, status, count(*), coalesce(sum(input_tokens), 0)::bigint, coalesce(sum(output_tokens), 0)::bigint,
                   coalesce(sum(cost_micro), 0)::bigint
            FROM usage_ledger WHERE @only::text IS NULL OR tenant_id = @only GROUP BY alias, status
            """);
        cmd.Parameters.Add(new NpgsqlParameter<string?>("only", NpgsqlTypes.NpgsqlDbType.Text) { TypedValue = onlyTenant });
        await using var reader = await cmd.ExecuteReaderAsync(cancellationToken);
        long requests = 0, tokensIn = 0, tokensOut = 0, cost = 0;
        var byModel = new SortedDictionary<string, long[]>(StringComparer.Ordinal);
        var byStatus = new SortedDictionary<string, long>(StringComparer.Ordinal);
        while (await reader.ReadAsync(cancellationToken))
        {
            var (alias, status) = (reader.GetString(0), reader.GetString(1));
            long n = reader.GetInt64(2), i = reader.GetInt64(3), o = reader.GetInt64(4), c = reader.GetInt64(5);
            requests += n;
            tokensIn += i;
            tokensOut += o;
            cost += c;
            var m = byModel.TryGetValue(alias, out var existing) ? existing : byModel[alias] = new long[4];
            m[0] += n;
            m[1] += i;
            m[2] += o;
            m[3] += c;
            byStatus[status] = byStatus.GetValueOrDefault(status) + n;
        }
        var models = new JsonObject();
        foreach (var (alias, m) in byModel)
        {
            models[alias] = new JsonObject { ["requests"] = m[0], ["tokens_in"] = m[1], ["tokens_out"] = m[2], ["cost_usd"] = Usd(m[3]) };
        }
        var statuses = new JsonObject();
        foreach (var (status, n) in byStatus)
        {
            statuses[status] = n;
        }
        return new JsonObject
        {
            ["requests"] = requests,
            ["tokens_in"] = tokensIn,
            ["tokens_out"] = tokensOut,
            ["cost_usd"] = Usd(cost),
            ["cost_micro_usd"] = cost,
            ["by_model"] = models,
            ["by_status"] = statuses,
        };
    }

    private static JsonNode? Usd(long? micro) => micro is { } m ? JsonValue.Create(m / 1_000_000m) : null;
}
