using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.Extensions.Options;
using ModelGateway.Policy.Rules;
using ModelGateway.Api.Routing;
using Npgsql;

namespace ModelGateway.Api.Tenancy;

/// <summary>
/// Tenants and keys in Postgres, with key lookups cached in memory for <see cref="TenancyOptions.KeyCacheTtl"/>
/// (the hot path must not query Postgres per request; revocation reaches every replica within the TTL).
/// </summary>
internal sealed class TenantStore(NpgsqlDataSource db, IOptions<TenancyOptions> options, TimeProvider time)
{
    private readonly ConcurrentDictionary<string, (Caller? Caller, long ExpiresTicks, long StaleSinceTicks)> _cache = new(StringComparer.Ordinal);
    private readonly long _ttlTicks = options.Value.KeyCacheTtl.Ticks;
    private readonly long _staleTicks = options.Value.KeyCacheStaleIfError.Ticks;

    /// <summary>The caller a key belongs to, or null for an unknown, revoked or expired key.</summary>
    public async ValueTask<Caller?> AuthenticateAsync(string key, CancellationToken cancellationToken)
    {
        var hash = ApiKeys.Hash(key);
        var cacheKey = Convert.ToBase64String(hash);
        var now = time.GetUtcNow();
        if (_cache.TryGetValue(cacheKey, out var hit) && hit.ExpiresTicks > now.UtcTicks)
        {
            return hit.Caller;
        }
        Caller? caller;
        try
        {
            caller = await LoadAsync(hash, now, cancellationToken);
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException && hit.ExpiresTicks > 0
                                   && now.UtcTicks - (hit.StaleSinceTicks == 0 ? hit.ExpiresTicks : hit.StaleSinceTicks) < _staleTicks)
        {
            // Postgres is unreachable: a key this replica verified recently keeps working (stale-if-error), checked again
            // after another TTL, so an outage of the store does not lock out every tenant once the cache expires.
            _cache[cacheKey] = (hit.Caller, now.UtcTicks + _ttlTicks, hit.StaleSinceTicks == 0 ? hit.ExpiresTicks : hit.StaleSinceTicks);
            return hit.Caller;
        }
        if (_cache.Count > 100_000)
        {
            _cache.Clear(); // Bounded: a flood of random keys must not grow memory.
        }
        _cache[cacheKey] = (caller, now.UtcTicks + _ttlTicks, 0);
        return caller;
    }

    /// <summary>The caller of a key this replica looked up recently and found valid, without touching Postgres.</summary>
    public bool TryGetCached(string key, out Caller? caller)
    {
        caller = null;
        return _cache.TryGetValue(Convert.ToBase64String(ApiKeys.Hash(key)), out var hit) && hit.ExpiresTicks > time.GetUtcNow().UtcTicks
            && (caller = hit.Caller) is not null;
    }

    /// <summary>Forgets cached lookups (after a revocation on this replica, so it applies here at once).</summary>
    public void InvalidateCache() => _cache.Clear();

    private async Task<Caller?> LoadAsync(byte[] hash, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var cmd = db.CreateCommand("""
            SELECT k.id, t.id, t.name, t.allowed_models, t.max_output_tokens, t.max_usd_per_request_micro, t.budget_micro,
                   t.budget_period, t.requests_per_minute, t.tokens_per_minute, t.policy::text
            FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
            WHERE k.key_hash = @hash AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > @now)
            """);
        cmd.Parameters.AddWithValue("hash", hash);
        cmd.Parameters.AddWithValue("now", now);
        await using var reader = await cmd.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            return null;
        }
        var tenant = new Tenant(
            reader.GetString(1),
            reader.GetString(2),
            reader.GetFieldValue<string[]>(3),
            reader.IsDBNull(4) ? null : reader.GetInt32(4),
            reader.IsDBNull(5) ? null : reader.GetInt64(5),
            reader.IsDBNull(6) ? null : reader.GetInt64(6),
            reader.GetString(7),
            reader.IsDBNull(8) ? null : reader.GetInt32(8),
            reader.IsDBNull(9) ? null : reader.GetInt32(9),
            TenantPolicy.Unrestricted);
        var stored = reader.IsDBNull(10) ? null
            : JsonSerializer.Deserialize(reader.GetString(10), PolicyJsonContext.Default.TenantPolicy);
        // The tenant's limits are policy too: one engine (built-in or OPA) sees all of them.
        var policy = (stored ?? TenantPolicy.Unrestricted) with
        {
            AllowedModels = tenant.AllowedModels.Count > 0 ? tenant.AllowedModels : stored?.AllowedModels,
            MaxOutputTokens = tenant.MaxOutputTokens ?? stored?.MaxOutputTokens,
            MaxUsdPerRequest = tenant.MaxMicroUsdPerRequest is { } m ? m / 1_000_000m : stored?.MaxUsdPerRequest,
        };
        return new Caller(tenant with { Policy = policy }, reader.GetString(0));
    }

    /// <summary>Creates or updates the configured seed tenants and registers their keys (idempotent).</summary>
    public async Task SeedAsync(IEnumerable<SeedTenant> seeds, CancellationToken cancellationToken)
    {
        foreach (var seed in seeds)
        {
            await using var upsert = db.CreateCommand("""
                INSERT INTO tenants (id, name, allowed_models, max_output_tokens, max_usd_per_request_micro, budget_micro, budget_period,
                                     requests_per_minute, tokens_per_minute, policy)
                VALUES (@id, @name, @models, @maxOut, @maxUsd, @budget, @period, @rpm, @tpm, @policy::jsonb)
                ON CONFLICT (id) DO UPDATE SET name = excluded.name, allowed_models = excluded.allowed_models,
                    max_output_tokens = excluded.max_output_tokens, max_usd_per_request_micro = excluded.max_usd_per_request_micro,
                    budget_micro = excluded.budget_micro, budget_period = excluded.budget_period,
                    requests_per_minute = excluded.requests_per_minute, tokens_per_minute = excluded.tokens_per_minute,
                    policy = excluded.policy, updated_at = now()
                """);
            upsert.Parameters.AddWithValue("id", seed.Id);
            upsert.Parameters.AddWithValue("name", seed.Name ?? seed.Id);
            upsert.Parameters.AddWithValue("models", seed.AllowedModels.ToArray());
            upsert.Parameters.AddWithValue("maxOut", (object?)seed.MaxOutputTokens ?? DBNull.Value);
            upsert.Parameters.AddWithValue("maxUsd", seed.MaxUsdPerRequest is { } m ? Prices.ToMicroUsd(m) : DBNull.Value);
            upsert.Parameters.AddWithValue("budget", seed.BudgetUsd is { } b ? Prices.ToMicroUsd(b) : DBNull.Value);
            upsert.Parameters.AddWithValue("period", seed.BudgetPeriod);
            upsert.Parameters.AddWithValue("rpm", (object?)seed.RequestsPerMinute ?? DBNull.Value);
            upsert.Parameters.AddWithValue("tpm", (object?)seed.TokensPerMinute ?? DBNull.Value);
            upsert.Parameters.AddWithValue("policy", seed.Policy is null ? DBNull.Value
                : JsonSerializer.Serialize(seed.Policy, PolicyJsonContext.Default.TenantPolicy));
            await upsert.ExecuteNonQueryAsync(cancellationToken);

            for (var i = 0; i < seed.ApiKeys.Count; i++)
            {
                var key = seed.ApiKeys[i];
                await using var insertKey = db.CreateCommand("""
                    INSERT INTO api_keys (id, tenant_id, key_hash, prefix) VALUES (@id, @tenant, @hash, @prefix)
                    ON CONFLICT (key_hash) DO NOTHING
                    """);
                insertKey.Parameters.AddWithValue("id", $"{seed.Id}-seed-{Convert.ToHexString(ApiKeys.Hash(key).AsSpan(0, 4)).ToLowerInvariant()}");
                insertKey.Parameters.AddWithValue("tenant", seed.Id);
                insertKey.Parameters.AddWithValue("hash", ApiKeys.Hash(key));
                insertKey.Parameters.AddWithValue("prefix", ApiKeys.DisplayPrefix(key));
                await insertKey.ExecuteNonQueryAsync(cancellationToken);
            }
        }
    }
}

/// <summary>Applies migrations and seeds tenants before the service takes traffic.</summary>
internal sealed class TenancyStartup(NpgsqlDataSource db, TenantStore store, IOptions<TenancyOptions> options, ILogger<TenancyStartup> logger)
    : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        // Postgres may still be starting (Aspire's WaitFor covers the AppHost, not every deployment): retry briefly.
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await Storage.Migrations.ApplyAsync(db, cancellationToken);
                break;
            }
            catch (NpgsqlException ex) when (attempt < 30)
            {
                Log.PostgresNotReady(logger, attempt, ex.Message);
                await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
            }
        }
        await store.SeedAsync(options.Value.Seed, cancellationToken);
        Log.Seeded(logger, options.Value.Seed.Count);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

internal static partial class Log
{
    [LoggerMessage(Level = LogLevel.Warning, Message = "Postgres not ready (attempt {Attempt}): {Reason}")]
    public static partial void PostgresNotReady(ILogger logger, int attempt, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Schema up to date; {Count} seed tenant(s) applied")]
    public static partial void Seeded(ILogger logger, int count);
}
