using System.Buffers.Binary;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.WebUtilities;
using Npgsql;
using NpgsqlTypes;

namespace ModelGateway.Api.Tracing;

/// <summary>Filters of <c>GET /api/traces</c>; <see cref="OnlyTenant"/> is the caller's isolation (null for the admin key).</summary>
internal sealed record TraceFilter(string? OnlyTenant, string? Tenant, string? Model, string? Status, DateTimeOffset? Since,
    DateTimeOffset? Until, TraceCursor? After, int Limit);

/// <summary>A position in the newest-first order: the last (ts, id) seen. Opaque to clients (base64url).</summary>
internal readonly record struct TraceCursor(DateTimeOffset Ts, Guid Id)
{
    public string Encode()
    {
        Span<byte> bytes = stackalloc byte[24];
        BinaryPrimitives.WriteInt64BigEndian(bytes, Ts.UtcTicks);
        Id.TryWriteBytes(bytes[8..]);
        return WebEncoders.Base64UrlEncode(bytes);
    }

    public static bool TryDecode(string text, out TraceCursor cursor)
    {
        cursor = default;
        try
        {
            var bytes = WebEncoders.Base64UrlDecode(text);
            if (bytes.Length != 24)
            {
                return false;
            }
            var ticks = BinaryPrimitives.ReadInt64BigEndian(bytes);
            if (ticks < DateTimeOffset.MinValue.UtcTicks || ticks > DateTimeOffset.MaxValue.UtcTicks)
            {
                return false;
            }
            cursor = new TraceCursor(new DateTimeOffset(ticks, TimeSpan.Zero), new Guid(bytes.AsSpan(8)));
            return true;
        }
        catch (FormatException)
        {
            return false;
        }
    }
}

/// <summary>Reads of the trace history, newest first, keyset-paged on (ts, id).</summary>
internal sealed class TraceQueries(NpgsqlDataSource db)
{
    private const string Columns = """
        id, trace_id, ts, tenant_id, key_id, alias, attempts::text, provider, upstream_model, status, http_status, ttft_ms,
        latency_ms, input_tokens, output_tokens, cached_tokens, cost_micro, stream, structured_output::text
        """;

    /// <summary>One page of summaries and the cursor of the next page (null on the last one).</summary>
    public async Task<(JsonArray Page, TraceCursor? Next)> ListAsync(TraceFilter f, CancellationToken cancellationToken)
    {
        await using var cmd = db.CreateCommand("""
            SELECT id, ts, alias, trace_id, tenant_id, upstream_model, status, http_status, latency_ms, stream
            FROM traces
            WHERE (@only::text IS NULL OR tenant_id = @only)
              AND (@tenant::text IS NULL OR tenant_id = @tenant)
              AND (@model::text IS NULL OR alias = @model OR upstream_model = @model)
              AND (@status::text IS NULL OR status = @status OR http_status::text = @status)
              AND (@since::timestamptz IS NULL OR ts >= @since)
              AND (@until::timestamptz IS NULL OR ts < @until)
              AND (@afterTs::timestamptz IS NULL OR (ts, id) < (@afterTs, @afterId))
            ORDER BY ts DESC, id DESC
            LIMIT @limit
            """);
        cmd.Parameters.Add(Text("only", f.OnlyTenant));
        cmd.Parameters.Add(Text("tenant", f.Tenant));
        cmd.Parameters.Add(Text("model", f.Model));
        cmd.Parameters.Add(Text("status", f.Status));
        cmd.Parameters.Add(Time("since", f.Since));
        cmd.Parameters.Add(Time("until", f.Until));
        cmd.Parameters.Add(Time("afterTs", f.After?.Ts));
        cmd.Parameters.AddWithValue("afterId", f.After?.Id ?? Guid.Empty);
        cmd.Parameters.AddWithValue("limit", f.Limit + 1);
        await using var reader = await cmd.ExecuteReaderAsync(cancellationToken);
        var page = new JsonArray();
        TraceCursor last = default;
        var more = false;
        while (await reader.ReadAsync(cancellationToken))
        {
            if (page.Count == f.Limit)
            {
                more = true;
                break;
            }
            var (id, ts) = (reader.GetGuid(0), reader.GetFieldValue<DateTimeOffset>(1));
            last = new TraceCursor(ts, id);
            page.Add(new JsonObject
            {
                ["id"] = id.ToString(),
                ["ts"] = ts,
                ["model"] = reader.IsDBNull(2) ? null : reader.GetString(2),
                ["trace_id"] = reader.GetString(3),
                ["tenant"] = reader.GetString(4),
                ["upstream_model"] = reader.IsDBNull(5) ? null : reader.GetString(5),
                ["status"] = reader.GetString(6),
                ["http_status"] = reader.GetInt32(7),
                ["latency_ms"] = Math.Round(reader.GetDouble(8), 1),
                ["stream"] = reader.GetBoolean(9),
            });
        }
        return (page, more ? last : null);
    }

    /// <summary>The full record by request id (a UUID) or by W3C trace id (32 hex digits; the newest such request).</summary>
    public async Task<JsonObject?> GetAsync(string id, string? onlyTenant, CancellationToken cancellationToken)
    {
        // Only the hyphenated form is a request id: 32 bare hex digits are a W3C trace id (which Guid.TryParse would accept).
        var byId = Guid.TryParseExact(id, "D", out var guid);
        await using var cmd = db.CreateCommand($"""
            SELECT {Columns} FROM traces
            WHERE {(byId ? "id = @id" : "trace_id = @id")} AND (@only::text IS NULL OR tenant_id = @only)
            ORDER BY ts DESC, id DESC LIMIT 1
            """);
        if (byId)
        {
            cmd.Parameters.AddWithValue("id", guid);
        }
        else
        {
            cmd.Parameters.AddWithValue("id", id);
        }
        cmd.Parameters.Add(Text("only", onlyTenant));
        await using var reader = await cmd.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            return null;
        }
        var cost = reader.GetInt64(16);
        return new JsonObject
        {
            ["id"] = reader.GetGuid(0).ToString(),
            ["trace_id"] = reader.GetString(1),
            ["ts"] = reader.GetFieldValue<DateTimeOffset>(2),
            ["tenant"] = reader.GetString(3),
            ["key_id"] = reader.GetString(4),
            ["model"] = reader.IsDBNull(5) ? null : reader.GetString(5),
            ["attempts"] = JsonNode.Parse(reader.GetString(6)),
            ["provider"] = reader.IsDBNull(7) ? null : reader.GetString(7),
            ["upstream_model"] = reader.IsDBNull(8) ? null : reader.GetString(8),
            ["status"] = reader.GetString(9),
            ["http_status"] = reader.GetInt32(10),
            ["time_to_first_token_ms"] = reader.IsDBNull(11) ? null : Math.Round(reader.GetDouble(11), 1),
            ["latency_ms"] = Math.Round(reader.GetDouble(12), 1),
            ["tokens_in"] = reader.GetInt32(13),
            ["tokens_out"] = reader.GetInt32(14),
            ["cached_tokens"] = reader.GetInt32(15),
            ["cost_usd"] = JsonValue.Create(cost / 1_000_000m),
            ["cost_micro_usd"] = cost,
            ["stream"] = reader.GetBoolean(17),
            ["structured_output"] = reader.IsDBNull(18) ? null : JsonNode.Parse(reader.GetString(18)),
        };
    }

    private static NpgsqlParameter Time(string name, DateTimeOffset? value) =>
        new(name, NpgsqlDbType.TimestampTz) { Value = value is { } v ? v.ToUniversalTime() : DBNull.Value };

    private static NpgsqlParameter<string?> Text(string name, string? value) => new(name, NpgsqlDbType.Text) { TypedValue = value };
}
