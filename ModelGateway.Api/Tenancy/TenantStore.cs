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
/// A key in use never expires under load: in the last fifth of its TTL (or the lookup timeout and a margin, if longer, up to
/// half the TTL) the first request to see it starts one background reload while every request keeps the cached answer, so
/// the entry is renewed before it lapses, even when Postgres hangs (the reload then gives up and the entry is kept,
/// stale-if-error). While a renewal is in flight the entry is served even past its expiry (stale-while-revalidate, for at
/// most the lookup timeout): a renewal started by a request late in the window must not hold the requests after expiry.
/// A renewal reads the key's current state, so a revocation still applies within the TTL (and the time the renewal takes). Lookups that
/// do miss (a key's first use, or its first after an idle TTL) are single-flight: concurrent requests with the same key share one
/// Postgres query. Before this, every request arriving while an expired entry was being reloaded ran its own query and
/// took its own flood-guard permit; under 256 connections from one address (bench/run.sh) the permits ran out and the
/// address's valid key was refused with 429 for the rest of the minute.
/// </summary>
internal sealed class TenantStore(NpgsqlDataSource db, IOptions<TenancyOptions> options, TimeProvider time)
{
    // Keyed by the key's SHA-256 as a value: the raw key is never kept, and a lookup allocates nothing.
    private readonly ConcurrentDictionary<KeyHash, (Caller? Caller, long ExpiresTicks, long StaleSinceTicks)> _cache = new();
    private readonly ConcurrentDictionary<KeyHash, InFlight> _loads = new();
    private readonly long _ttlTicks = options.Value.KeyCacheTtl.Ticks;
    private readonly long _staleTicks = options.Value.KeyCacheStaleIfError.Ticks;
    private readonly TimeSpan _lookupTimeout = options.Value.KeyLookupTimeout;
    // How long before expiry a key in use is renewed: the last fifth of the TTL, or longer than a lookup may take (up to half
    // the TTL), so that a renewal Postgres does not answer ends (stale-if-error) before the entry lapses and no request waits.
    private readonly long _renewTicks = Math.Min(options.Value.KeyCacheTtl.Ticks / 2,
        Math.Max(options.Value.KeyCacheTtl.Ticks / 5, (options.Value.KeyLookupTimeout + TimeSpan.FromMilliseconds(250)).Ticks));
    private long _generation; // bumped by InvalidateCache: a lookup that began before it does not write its answer

    /// <summary>
    /// The caller a key belongs to, or null for an unknown, revoked or expired key. <paramref name="takePermit"/> is asked
    /// only when this request would start a Postgres query itself (not when it joins one in flight, nor to reload a key
    /// found valid within the last TTL), and for an unknown key answered from the cache; false refuses it (<c>Flooded</c>).
    /// </summary>
    public async ValueTask<(Caller? Caller, bool Flooded)> AuthenticateAsync(string key, Func<bool> takePermit, CancellationToken cancellationToken)
    {
        var cacheKey = ApiKeys.HashOf(key);
        while (true)
        {
            var now = time.GetUtcNow().UtcTicks;
            if (_cache.TryGetValue(cacheKey, out var hit) && hit.ExpiresTicks > now)
            {
                // An unknown key answered from the cache still counts as an unauthenticated request.
                return hit.Caller is null && !takePermit() ? (null, true) : (hit.Caller, false);
            }
            if (_loads.TryGetValue(cacheKey, out var load))
            {
                if (load.Renewal && hit.Caller is not null && now - hit.ExpiresTicks < _lookupTimeout.Ticks)
                {
                    // Lapsed while its renewal (begun before expiry) is still in flight: served as it was until the renewal ends.
                    return (hit.Caller, false);
                }
                var joined = await load.Task.WaitAsync(cancellationToken);
                if (joined.Abandoned)
                {
                    continue; // its starter was refused a permit: this request asks for its own
                }
                return (joined.Caller, false);
            }
            // The permit is asked for only once this request owns the lookup, so requests racing to start it spend one.
            var mine = new TaskCompletionSource<Lookup>(TaskCreationOptions.RunContinuationsAsynchronously);
            if (!_loads.TryAdd(cacheKey, new InFlight(mine.Task, Renewal: false)))
            {
                continue;
            }
            // A key found valid within the last TTL (its renewal did not come in time: no request in the window, or a pause)
            // is a reload, not an unknown key: it needs no permit. One reload per key per expiry, single-flight as above.
            var recentlyValid = hit.Caller is not null && now - hit.ExpiresTicks < _ttlTicks;
            if (!recentlyValid && !takePermit())
            {
                _loads.TryRemove(new KeyValuePair<KeyHash, InFlight>(cacheKey, new InFlight(mine.Task, Renewal: false)));
                mine.SetResult(new Lookup(null, Abandoned: true));
                return (null, true);
            }
            _ = LoadIntoCacheAsync(cacheKey, mine, renewal: false);
            return ((await mine.Task.WaitAsync(cancellationToken)).Caller, false);
        }
    }

    /// <summary>The caller of a key this replica looked up recently and found valid, without touching Postgres.</summary>
    public bool TryGetCached(string key, out Caller? caller)
    {
        caller = null;
        var cacheKey = ApiKeys.HashOf(key);
        if (!_cache.TryGetValue(cacheKey, out var hit) || hit.Caller is null)
        {
            return false;
        }
        var now = time.GetUtcNow().UtcTicks;
        if (hit.ExpiresTicks <= now)
        {
            return false;
        }
        if (hit.ExpiresTicks - now < _renewTicks && !_loads.ContainsKey(cacheKey))
        {
            // Renew ahead of expiry (no permit: a key found valid, at most once a TTL); this request goes on with the cached answer.
            var renewal = new TaskCompletionSource<Lookup>(TaskCreationOptions.RunContinuationsAsynchronously);
            if (_loads.TryAdd(cacheKey, new InFlight(renewal.Task, Renewal: true)))
            {
                _ = LoadIntoCacheAsync(cacheKey, renewal, renewal: true);
            }
        }
        caller = hit.Caller;
        return true;
    }

    /// <summary>Forgets cached lookups (after a revocation on this replica, so it applies here at once).</summary>
    public void InvalidateCache()
    {
        Interlocked.Increment(ref _generation);
        _cache.Clear();
        // A lookup already in flight may have read the key before the change: later requests start their own instead of
        // joining it (it finishes for those already waiting, and its generation keeps it out of the cache).
        _loads.Clear();
    }

    /// <summary>
    /// The one lookup of <paramref name="cacheKey"/> in flight, registered in <see cref="_loads"/> by the caller. It belongs to
    /// no request, so a client that hangs up does not fail the others waiting on it.
    /// </summary>
    private async Task LoadIntoCacheAsync(KeyHash cacheKey, TaskCompletionSource<Lookup> result, bool renewal)
    {
        var generation = Interlocked.Read(ref _generation);
        var now = time.GetUtcNow();
        _cache.TryGetValue(cacheKey, out var hit);
        // An I/O bound in real time (not the gateway's TimeProvider): a lookup that outlasts it is Postgres unavailable. The
        // waiters stop waiting at the bound whatever the query does: Npgsql cancels a query by asking the server, and a
        // server that hangs does not answer that either (a paused Postgres held lookups for ~60 s with the token alone).
        using var timeout = new CancellationTokenSource(_lookupTimeout);
        try
        {
            Caller? caller;
            var query = LoadAsync(cacheKey.ToArray(), now, timeout.Token);
            try
            {
                caller = await query.WaitAsync(timeout.Token);
            }
            catch (OperationCanceledException) when (timeout.IsCancellationRequested)
            {
                // The query may still end (or fail) later, when the server answers or its connection breaks: nobody waits for it.
                _ = query.ContinueWith(static t => _ = t.Exception, CancellationToken.None,
                    TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
                // As Npgsql reports its own timeouts: storage unavailable (stale-if-error below; a 503 for a key not cached).
                throw new NpgsqlException("The key lookup got no answer from Postgres in time.",
                    new TimeoutException($"No answer within {_lookupTimeout.TotalSeconds:0.###} s (Tenancy:KeyLookupTimeout)."));
            }
            if (Interlocked.Read(ref _generation) == generation)
            {
                if (_cache.Count > 100_000)
                {
                    _cache.Clear(); // Bounded: a flood of random keys must not grow memory.
                }
                _cache[cacheKey] = (caller, now.UtcTicks + _ttlTicks, 0);
            }
            result.SetResult(new Lookup(caller));
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException && hit.ExpiresTicks > 0
                                   && now.UtcTicks - (hit.StaleSinceTicks == 0 ? hit.ExpiresTicks : hit.StaleSinceTicks) < _staleTicks)
        {
            // Postgres is unreachable: a key this replica verified recently keeps working (stale-if-error), checked again
            // after another TTL, so an outage of the store does not lock out every tenant once the cache expires.
            if (Interlocked.Read(ref _generation) == generation)
            {
                // Another TTL from the failure, not from the lookup's start: one that timed out must not leave an entry already lapsed.
                _cache[cacheKey] = (hit.Caller, time.GetUtcNow().UtcTicks + _ttlTicks, hit.StaleSinceTicks == 0 ? hit.ExpiresTicks : hit.StaleSinceTicks);
            }
            result.SetResult(new Lookup(hit.Caller));
        }
        catch (Exception ex)
        {
            result.SetException(ex);
            // Marked observed: waiters still get it, and a renewal nobody waits on fails quietly (the entry then expires as it would have).
            _ = result.Task.Exception;
        }
        finally
        {
            _loads.TryRemove(new KeyValuePair<KeyHash, InFlight>(cacheKey, new InFlight(result.Task, renewal)));
        }
    }

    /// <summary>A lookup's answer; <c>Abandoned</c> when its starter was refused a flood permit before querying.</summary>
    private readonly record struct Lookup(Caller? Caller, bool Abandoned = false);

    /// <summary>A lookup in flight; <c>Renewal</c> when it was started ahead of expiry by a request served from the cache.</summary>
    private readonly record struct InFlight(Task<Lookup> Task, bool Renewal);

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
