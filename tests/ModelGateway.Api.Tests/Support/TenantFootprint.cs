using Npgsql;
using StackExchange.Redis;

namespace ModelGateway.Api.Tests.Support;

/// <summary>
/// What a request leaves behind for one tenant: its Redis admission keys (rate windows, spend, reservations, period
/// marker) and its usage-ledger rows. A refused request must leave both as they were.
/// </summary>
internal static class TenantFootprint
{
    /// <summary>Every Redis key of the tenant with its value (strings, hashes and sorted sets) and its TTL in ms (-1: none).</summary>
    public static async Task<SortedDictionary<string, (string Value, long TtlMs)>> RedisAsync(string redisConnectionString, string tenant)
    {
        await using var redis = await ConnectionMultiplexer.ConnectAsync(redisConnectionString + ",allowAdmin=true");
        var server = redis.GetServer(redis.GetEndPoints()[0]);
        var db = redis.GetDatabase();
        var keys = new SortedDictionary<string, (string, long)>(StringComparer.Ordinal);
        await foreach (var key in server.KeysAsync(pattern: $"*{{t:{tenant}}}*"))
        {
            var type = await db.KeyTypeAsync(key);
            var value = type switch
            {
                RedisType.String => (string?)await db.StringGetAsync(key),
                RedisType.Hash => string.Join(",", (await db.HashGetAllAsync(key)).Select(e => $"{e.Name}={e.Value}").Order()),
                RedisType.SortedSet => string.Join(",", (await db.SortedSetRangeByRankWithScoresAsync(key)).Select(e => $"{e.Element}={e.Score}")),
                _ => type.ToString(),
            };
            var ttl = await db.KeyTimeToLiveAsync(key);
            keys[key!] = ($"{type} {value}", ttl is { } t ? (long)t.TotalMilliseconds : -1);
        }
        return keys;
    }

    /// <summary>The Redis keys as one comparable text, without TTLs.</summary>
    public static async Task<string> RedisTextAsync(string redisConnectionString, string tenant) =>
        string.Join("\n", (await RedisAsync(redisConnectionString, tenant)).Select(kv => $"{kv.Key} {kv.Value.Value}"));

    /// <summary>The tenant's ledger rows, once the count has reached <paramref name="expectAtLeast"/> and stopped moving (15 s at most).</summary>
    public static async Task<long> LedgerRowsAsync(string postgresConnectionString, string tenant, long expectAtLeast)
    {
        var ct = TestContext.Current.CancellationToken;
        await using var connection = new NpgsqlConnection(postgresConnectionString);
        await connection.OpenAsync(ct);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        long previous = -1;
        while (true)
        {
            await using var cmd = new NpgsqlCommand("SELECT count(*) FROM usage_ledger WHERE tenant_id = @t", connection);
            cmd.Parameters.AddWithValue("t", tenant);
            var rows = (long)(await cmd.ExecuteScalarAsync(ct))!;
            if ((rows >= expectAtLeast && rows == previous) || DateTime.UtcNow > deadline)
            {
                return rows;
            }
            previous = rows;
            await Task.Delay(200, ct);
        }
    }
}
