using System.Net;
using System.Net.Http.Headers;
using Microsoft.Extensions.DependencyInjection;
using ModelGateway.Api.Tenancy;
using ModelGateway.Api.Tests.Support;

namespace ModelGateway.Api.Tests.Security;

/// <summary>
/// A one-second key cache and a flood guard of two lookups a minute per address: any stampede of lookups shows. Lookups
/// give up on Postgres after a second.
/// </summary>
public sealed class ShortKeyCacheFixture : GatewayFixture
{
    protected override IEnumerable<KeyValuePair<string, string?>> ExtraSettings => new Dictionary<string, string?>
    {
        ["Tenancy:KeyCacheTtl"] = "00:00:01",
        ["FloodGuard:PermitsPerMinute"] = "2",
        ["Tenancy:KeyLookupTimeout"] = "00:00:01",
    };
}

/// <summary>
/// The key cache under concurrency: a key in use is renewed before its entry lapses, and requests that miss together
/// share one lookup, so a busy client behind one address never spends the flood guard's permits on its own valid key.
/// </summary>
public sealed class KeyCacheTests(ShortKeyCacheFixture fx) : IClassFixture<ShortKeyCacheFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_key_in_constant_use_from_one_address_is_never_refused_as_its_cache_entry_ages()
    {
        var store = fx.Gateway.Services.GetRequiredService<TenantStore>();
        store.InvalidateCache();
        // 32 clients for four cache lifetimes. Without renewal ahead of expiry, every expiry sent the requests arriving
        // meanwhile to Postgres one by one, each taking a permit: the third of them (2 a minute here) was refused.
        var statuses = new System.Collections.Concurrent.ConcurrentBag<HttpStatusCode>();
        var until = DateTime.UtcNow.AddSeconds(4.2);
        await Task.WhenAll(Enumerable.Range(0, 32).Select(async _ =>
        {
            while (DateTime.UtcNow < until)
            {
                statuses.Add(await ModelsAsync(GatewayFixture.DevKey));
            }
        }));
        Assert.True(statuses.Count > 100, $"only {statuses.Count} requests");
        Assert.All(statuses, s => Assert.Equal(HttpStatusCode.OK, s));
    }

    [Fact]
    public async Task Concurrent_misses_for_one_key_share_a_single_lookup_and_a_single_permit()
    {
        var store = fx.Gateway.Services.GetRequiredService<TenantStore>();
        store.InvalidateCache();
        var permits = 0;
        var results = await Task.WhenAll(Enumerable.Range(0, 50).Select(_ =>
            store.AuthenticateAsync(GatewayFixture.DevKey, () => Interlocked.Increment(ref permits) > 0, Ct).AsTask()));
        Assert.Equal(1, permits);
        Assert.All(results, r => Assert.False(r.Flooded));
        Assert.All(results, r => Assert.Equal("dev", r.Caller?.Tenant.Id));
        Assert.Single(results.Select(r => r.Caller).Distinct());

        // Past its TTL (no renewal ran: no request came in its last fifth), the key is reloaded without a permit: it was
        // valid a moment ago, so this is not an unknown key's lookup.
        await Task.Delay(TimeSpan.FromMilliseconds(1100), Ct);
        var reloaded = await store.AuthenticateAsync(GatewayFixture.DevKey, () => false, Ct);
        Assert.False(reloaded.Flooded);
        Assert.Equal("dev", reloaded.Caller?.Tenant.Id);

        // An unknown key answered from the cache still counts against the address, as an unauthenticated request.
        var refused = await store.AuthenticateAsync("sk-not-a-key", () => true, Ct);
        Assert.Null(refused.Caller);
        var again = await store.AuthenticateAsync("sk-not-a-key", () => false, Ct);
        Assert.True(again.Flooded);
    }

    [Fact]
    public async Task After_an_invalidation_a_request_does_not_join_a_lookup_that_began_before_it()
    {
        var store = fx.Gateway.Services.GetRequiredService<TenantStore>();
        store.InvalidateCache();
        var permits = 0;
        bool Count() => Interlocked.Increment(ref permits) > 0;
        // The table locked, so the first lookup is certainly still in flight (waiting in Postgres) when the invalidation comes.
        await using var apiKeys = await LockedTable.LockAsync(fx.PostgresConnectionString, "api_keys", Ct);
        var before = store.AuthenticateAsync(GatewayFixture.DevKey, Count, Ct).AsTask();
        // A revocation on this replica: the lookup in flight may have read the key before it, so it must not answer
        // requests that arrive afterwards (they start their own lookup, and ask for their own permit).
        store.InvalidateCache();
        var after = store.AuthenticateAsync(GatewayFixture.DevKey, Count, Ct).AsTask();
        await Task.Delay(100, Ct);
        Assert.False(before.IsCompleted);
        Assert.False(after.IsCompleted);
        await apiKeys.ReleaseAsync();
        await Task.WhenAll(before, after);
        Assert.Equal(2, permits);
        Assert.Equal("dev", after.Result.Caller?.Tenant.Id);
    }

    [Fact]
    public async Task A_hung_Postgres_holds_requests_no_longer_than_the_lookup_timeout()
    {
        var store = fx.Gateway.Services.GetRequiredService<TenantStore>();
        store.InvalidateCache();
        Assert.Equal("dev", (await store.AuthenticateAsync(GatewayFixture.DevKey, () => true, Ct)).Caller?.Tenant.Id);
        // Postgres alive but not answering lookups (as when it hangs): the table locked until the end of the test.
        await using var apiKeys = await LockedTable.LockAsync(fx.PostgresConnectionString, "api_keys", Ct);
        await Task.Delay(TimeSpan.FromMilliseconds(1100), Ct); // the key's entry is past its TTL: the next request reloads it

        // The key verified a moment ago is served stale once the lookup gives up (before: held for Npgsql's 30 s timeout).
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var stale = await store.AuthenticateAsync(GatewayFixture.DevKey, () => false, Ct);
        Assert.Equal("dev", stale.Caller?.Tenant.Id);
        Assert.InRange(clock.Elapsed, TimeSpan.FromSeconds(0.9), TimeSpan.FromSeconds(5));
        // ...and cached again for a TTL, so the requests after it do not wait at all.
        clock.Restart();
        Assert.Equal("dev", (await store.AuthenticateAsync(GatewayFixture.DevKey, () => false, Ct)).Caller?.Tenant.Id);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(0.5), $"served from the cache in {clock.Elapsed}");

        // A key this replica never verified cannot be vouched for: storage unavailable (a 503), also within the timeout.
        clock.Restart();
        await Assert.ThrowsAsync<Npgsql.NpgsqlException>(async () => await store.AuthenticateAsync("sk-never-seen-0123456789", () => true, Ct));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"refused after {clock.Elapsed}");
        await apiKeys.ReleaseAsync();
    }

    private async Task<HttpStatusCode> ModelsAsync(string key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        using var response = await fx.Gateway.Client.SendAsync(request, Ct);
        return response.StatusCode;
    }
}

/// <summary>A six-second key cache whose lookups give up on Postgres after two seconds.</summary>
public sealed class RenewalFixture : GatewayFixture
{
    protected override IEnumerable<KeyValuePair<string, string?>> ExtraSettings => new Dictionary<string, string?>
    {
        ["Tenancy:KeyCacheTtl"] = "00:00:06",
        ["Tenancy:KeyLookupTimeout"] = "00:00:02",
    };
}

/// <summary>A key in use while Postgres hangs: its renewal gives up before the entry lapses, or the entry is served until it does.</summary>
public sealed class KeyRenewalTests(RenewalFixture fx) : IClassFixture<RenewalFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_key_in_use_never_waits_on_a_hung_Postgres_as_its_entry_ages()
    {
        var (store, cachedAt, apiKeys) = await CachedThenHungAsync();
        await using var locked = apiKeys; // released (rolled back) at the end whatever happens

        // A request every 20 ms past the six-second TTL: a renewal started in the last fifth (1.2 s) would still be waiting on
        // Postgres for 0.8 s after it.
        var slowest = await SlowestRequestAsync(store, until: cachedAt.AddSeconds(7.5));
        await apiKeys.ReleaseAsync();
        Assert.True(slowest < TimeSpan.FromSeconds(0.4), $"a request waited {slowest} for the renewal");
    }

    [Fact]
    public async Task A_renewal_begun_just_before_expiry_does_not_hold_the_requests_after_it()
    {
        var (store, cachedAt, apiKeys) = await CachedThenHungAsync();
        await using var locked = apiKeys; // released (rolled back) at the end whatever happens

        // No request until 0.2 s before the six-second TTL ends: the first one starts the renewal late in its window, and
        // Postgres hangs, so the renewal gives up (stale-if-error) only 1.8 s after the entry lapsed. Requests in between
        // are served the entry, not held until then.
        await Task.Delay(cachedAt.AddSeconds(5.8) - DateTime.UtcNow, Ct);
        Assert.True(store.TryGetCached(GatewayFixture.DevKey, out _), "the entry lapsed before the test could start its renewal");
        var slowest = await SlowestRequestAsync(store, until: cachedAt.AddSeconds(8.3));
        await apiKeys.ReleaseAsync();
        Assert.True(slowest < TimeSpan.FromSeconds(0.4), $"a request waited {slowest} for a renewal begun before expiry");
    }

    /// <summary>The dev key looked up afresh (cached from now), then <c>api_keys</c> locked as a hung Postgres.</summary>
    private async Task<(TenantStore Store, DateTime CachedAt, LockedTable ApiKeys)> CachedThenHungAsync()
    {
        var store = fx.Gateway.Services.GetRequiredService<TenantStore>();
        store.InvalidateCache();
        Assert.Equal("dev", (await store.AuthenticateAsync(GatewayFixture.DevKey, () => true, Ct)).Caller?.Tenant.Id);
        var cachedAt = DateTime.UtcNow;
        return (store, cachedAt, await LockedTable.LockAsync(fx.PostgresConnectionString, "api_keys", Ct));
    }

    /// <summary>
    /// Authenticates the dev key every 20 ms until <paramref name="until"/> as the request path does (the cached answer, which
    /// starts the renewal near expiry, else a lookup) and returns the slowest; each must find the dev tenant.
    /// </summary>
    private static async Task<TimeSpan> SlowestRequestAsync(TenantStore store, DateTime until)
    {
        var slowest = TimeSpan.Zero;
        var clock = new System.Diagnostics.Stopwatch();
        while (DateTime.UtcNow < until)
        {
            clock.Restart();
            var caller = store.TryGetCached(GatewayFixture.DevKey, out var cached) ? cached
                : (await store.AuthenticateAsync(GatewayFixture.DevKey, () => false, Ct)).Caller;
            clock.Stop();
            Assert.Equal("dev", caller?.Tenant.Id);
            slowest = clock.Elapsed > slowest ? clock.Elapsed : slowest;
            await Task.Delay(20, Ct);
        }
        return slowest;
    }
}

/// <summary>
/// A table locked in a transaction of its own, as a Postgres that hangs looks to a query of it: the query waits until
/// <see cref="ReleaseAsync"/> (or disposal) rolls the transaction back.
/// </summary>
internal sealed class LockedTable : IAsyncDisposable
{
    private readonly Npgsql.NpgsqlConnection _connection;
    private readonly Npgsql.NpgsqlTransaction _transaction;

    private LockedTable(Npgsql.NpgsqlConnection connection, Npgsql.NpgsqlTransaction transaction) =>
        (_connection, _transaction) = (connection, transaction);

    public static async Task<LockedTable> LockAsync(string connectionString, string table, CancellationToken cancellationToken)
    {
        var connection = new Npgsql.NpgsqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using (var command = new Npgsql.NpgsqlCommand($"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE", connection, transaction))
        {
            await command.ExecuteNonQueryAsync(cancellationToken);
        }
        return new LockedTable(connection, transaction);
    }

    public Task ReleaseAsync() => _transaction.RollbackAsync();

    public async ValueTask DisposeAsync()
    {
        await _transaction.DisposeAsync();
        await _connection.DisposeAsync();
    }
}
