using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using ModelGateway.Api.Routing;
using Npgsql;

namespace ModelGateway.Api.Tenancy;

/// <summary>
/// Writes to tenants and keys for the admin API. Every change that affects authentication or limits clears this replica's
/// key cache at once; other replicas pick it up within <see cref="TenancyOptions.KeyCacheTtl"/>.
/// </summary>
internal sealed partial class TenantAdminStore(NpgsqlDataSource db, KeyCacheInvalidation keyCache, TimeProvider time)
{
    /// <summary>Tenant ids appear in Redis keys and URLs: a conservative alphabet keeps both unambiguous.</summary>
    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    public static partial Regex TenantIdPattern();

    /// <summary>The updatable fields, their columns and how a JSON value becomes a column value.</summary>
    private static readonly (string Field, string Column, Func<JsonNode?, object> Convert)[] Fields =
    [
        ("name", "name", n => String(n, "name") ?? throw new ArgumentException("'name' must be a string.")),
        ("allowed_models", "allowed_models", n => n is null ? Array.Empty<string>() : n is JsonArray a
            ? a.Select(x => String(x, "allowed_models") ?? throw new ArgumentException("'allowed_models' must hold strings.")).ToArray()
            : throw new ArgumentException("'allowed_models' must be an array of strings.")),
        ("max_output_tokens", "max_output_tokens", n => PositiveInt(n, "max_output_tokens")),
        ("max_usd_per_request", "max_usd_per_request_micro", n => Micro(n, "max_usd_per_request")),
        ("budget_usd", "budget_micro", n => Micro(n, "budget_usd")),
        ("budget_period", "budget_period", n => String(n, "budget_period") is { } p && Budgets.BudgetPeriod.IsValid(p) ? p
            : throw new ArgumentException("'budget_period' must be 'daily', 'monthly' or 'total'.")),
        ("requests_per_minute", "requests_per_minute", n => PositiveInt(n, "requests_per_minute")),
        ("tokens_per_minute", "tokens_per_minute", n => PositiveInt(n, "tokens_per_minute")),
    ];

    /// <summary>Creates a tenant. Returns false if the id is taken.</summary>
    public async Task<bool> CreateAsync(string id, JsonObject body, CancellationToken cancellationToken)
    {
        var columns = new List<string> { "id" };
        var values = new List<object> { id };
        foreach (var (field, column, convert) in Fields)
        {
            if (body.TryGetPropertyValue(field, out var node))
            {
                columns.Add(column);
                values.Add(convert(node));
            }
        }
        if (!columns.Contains("name"))
        {
            columns.Add("name");
            values.Add(id);
        }
        await using var cmd = db.CreateCommand(
            $"INSERT INTO tenants ({string.Join(", ", columns)}) VALUES ({string.Join(", ", columns.Select((_, i) => "$" + (i + 1)))}) ON CONFLICT (id) DO NOTHING");
        foreach (var v in values)
        {
            cmd.Parameters.Add(new NpgsqlParameter { Value = v });
        }
        return await cmd.ExecuteNonQueryAsync(cancellationToken) == 1;
    }

    /// <summary>Changes the fields present in <paramref name="body"/> (null clears a limit). Returns false for an unknown tenant.</summary>
    public async Task<bool> UpdateAsync(string id, JsonObject body, CancellationToken cancellationToken)
    {
        var sets = new List<string>();
        await using var cmd = db.CreateCommand();
        cmd.Parameters.Add(new NpgsqlParameter { Value = id });
        foreach (var (field, column, convert) in Fields)
        {
            if (body.TryGetPropertyValue(field, out var node))
            {
                cmd.Parameters.Add(new NpgsqlParameter { Value = convert(node) });
                sets.Add($"{column} = ${cmd.Parameters.Count}");
            }
        }
        sets.Add("updated_at = now()");
        cmd.CommandText = $"UPDATE tenants SET {string.Join(", ", sets)} WHERE id = $1";
        var found = await cmd.ExecuteNonQueryAsync(cancellationToken) == 1;
        await keyCache.InvalidateEverywhereAsync();
        return found;
    }

    public async Task<bool> DeleteAsync(string id, CancellationToken cancellationToken)
    {
        await using var cmd = db.CreateCommand("DELETE FROM tenants WHERE id = $1");
        cmd.Parameters.Add(new NpgsqlParameter { Value = id });
        var found = await cmd.ExecuteNonQueryAsync(cancellationToken) == 1;
        await keyCache.InvalidateEverywhereAsync();
        return found;
    }

    public async Task<bool> ExistsAsync(string id, CancellationToken cancellationToken)
    {
        await using var cmd = db.CreateCommand("SELECT 1 FROM tenants WHERE id = $1");
        cmd.Parameters.Add(new NpgsqlParameter { Value = id });
        return await cmd.ExecuteScalarAsync(cancellationToken) is not null;
    }

    /// <summary>Issues a new key; the plain key is returned here once and never stored.</summary>
    public async Task<(string Id, string Key, string Prefix)?> IssueKeyAsync(string tenantId, DateTimeOffset? expiresAt, CancellationToken cancellationToken)
    {
        var key = ApiKeys.Generate();
        var keyId = "key_" + Guid.CreateVersion7(time.GetUtcNow()).ToString("N")[..20];
        await using var cmd = db.CreateCommand("""
            INSERT INTO api_keys (id, tenant_id, key_hash, prefix, expires_at)
            SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM tenants WHERE id = $2)
            """);
        cmd.Parameters.Add(new NpgsqlParameter { Value = keyId });
        cmd.Parameters.Add(new NpgsqlParameter { Value = tenantId });
        cmd.Parameters.Add(new NpgsqlParameter { Value = ApiKeys.Hash(key) });
        cmd.Parameters.Add(new NpgsqlParameter { Value = ApiKeys.DisplayPrefix(key) });
        cmd.Parameters.Add(new NpgsqlParameter<DateTimeOffset?>("", NpgsqlTypes.NpgsqlDbType.TimestampTz) { TypedValue = expiresAt });
        return await cmd.ExecuteNonQueryAsync(cancellationToken) == 1 ? (keyId, key, ApiKeys.DisplayPrefix(key)) : null;
    }

    public async Task<JsonArray> ListKeysAsync(string tenantId, CancellationToken cancellationToken)
    {
        await using var cmd = db.CreateCommand(
            "SELECT id, prefix, created_at, expires_at, revoked_at FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, id");
        cmd.Parameters.Add(new NpgsqlParameter { Value = tenantId });
        await using var reader = await cmd.ExecuteReaderAsync(cancellationToken);
        var keys = new JsonArray();
        while (await reader.ReadAsync(cancellationToken))
        {
            keys.Add(new JsonObject
            {
                ["id"] = reader.GetString(0),
                ["prefix"] = reader.GetString(1),
                ["created_at"] = reader.GetFieldValue<DateTimeOffset>(2),
                ["expires_at"] = reader.IsDBNull(3) ? null : reader.GetFieldValue<DateTimeOffset>(3),
                ["revoked_at"] = reader.IsDBNull(4) ? null : reader.GetFieldValue<DateTimeOffset>(4),
            });
        }
        return keys;
    }

    /// <summary>Revokes a key of the tenant. Returns false if it does not exist (or belongs to another tenant).</summary>
    public async Task<bool> RevokeKeyAsync(string tenantId, string keyId, CancellationToken cancellationToken)
    {
        await using var cmd = db.CreateCommand(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, $3) WHERE tenant_id = $1 AND id = $2");
        cmd.Parameters.Add(new NpgsqlParameter { Value = tenantId });
        cmd.Parameters.Add(new NpgsqlParameter { Value = keyId });
        cmd.Parameters.Add(new NpgsqlParameter { Value = time.GetUtcNow() });
        var found = await cmd.ExecuteNonQueryAsync(cancellationToken) == 1;
        await keyCache.InvalidateEverywhereAsync();
        return found;
    }

    /// <summary>Marks the tenant's spend reset now: rebuilds from the ledger count only later rows.</summary>
    public async Task<bool> MarkSpendResetAsync(string tenantId, CancellationToken cancellationToken)
    {
        await using var cmd = db.CreateCommand("UPDATE tenants SET spend_reset_at = $2, updated_at = now() WHERE id = $1");
        cmd.Parameters.Add(new NpgsqlParameter { Value = tenantId });
        cmd.Parameters.Add(new NpgsqlParameter { Value = time.GetUtcNow() });
        return await cmd.ExecuteNonQueryAsync(cancellationToken) == 1;
    }

    private static string? String(JsonNode? node, string field) =>
        node is null ? null : node is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>()
            : throw new ArgumentException($"'{field}' must be a string.");

    private static object PositiveInt(JsonNode? node, string field) =>
        node is null ? DBNull.Value
            : node is JsonValue v && v.TryGetValue<int>(out var i) && i > 0 ? i
            : throw new ArgumentException($"'{field}' must be a positive integer or null.");

    private static object Micro(JsonNode? node, string field) =>
        node is null ? DBNull.Value
            : node is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<decimal>(out var usd) && usd >= 0 && usd < 1_000_000_000m
                ? Prices.ToMicroUsd(usd)
                : throw new ArgumentException($"'{field}' must be a non-negative number of USD or null.");
}
