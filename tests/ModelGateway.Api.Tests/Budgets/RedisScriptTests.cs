using System.Reflection;
using ModelGateway.Api.Budgets;
using StackExchange.Redis;

namespace ModelGateway.Api.Tests.Budgets;

public sealed class RedisScriptTests
{
    [Fact]
    public async Task A_write_that_races_a_failing_connection_is_a_connection_failure_not_an_unhandled_error()
    {
        // What StackExchange.Redis threw when Redis was killed under load (RedisOutageTests saw two 500s from it): admission
        // handles connection failures (fail open or closed) but not InvalidOperationException.
        var db = DispatchProxy.Create<IDatabase, CompletedWriterDatabase>();
        var ex = await Assert.ThrowsAsync<RedisConnectionException>(() => AdmissionScripts.Admit.EvaluateAsync(db, [], []));
        Assert.Equal(ConnectionFailureType.SocketFailure, ex.FailureType);
        Assert.IsType<InvalidOperationException>(ex.InnerException);
    }

    [Fact]
    public async Task Admission_gives_every_key_it_writes_an_expiry_and_renews_the_reservation_keys_before_they_could_lapse()
    {
        await using var server = await ModelGateway.Testing.RedisServer.StartAsync();
        await using var redis = await ConnectionMultiplexer.ConnectAsync(server.ConnectionString);
        var db = redis.GetDatabase();
        RedisKey[] keys = ["rpm{t:x}", "tpm{t:x}", "spent{t:x}", "reserved{t:x}", "reservations{t:x}", "expiries{t:x}", "marker{t:x}"];
        await db.StringSetAsync("marker{t:x}", "r:epoch");
        const long window = 120_000, reservationKeys = 1_800_000; // as Admission passes them: two minutes, twice the reservation timeout
        async Task<long> AdmitAsync(string id, long tokens)
        {
            var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            var r = (RedisResult[])(await AdmissionScripts.Admit.EvaluateAsync(db, keys,
                [100, 100_000, 1_000_000, 10, tokens, id, now, now + 900_000, window, reservationKeys]))!;
            return (long)r[0];
        }
        async Task<long> TtlAsync(RedisKey key) => (long)((await db.KeyTimeToLiveAsync(key))?.TotalMilliseconds ?? -1);

        Assert.Equal(0, await AdmitAsync("a", 5));
        foreach (var key in keys[..2])
        {
            Assert.InRange(await TtlAsync(key), window - 5_000, window);
        }
        foreach (var key in keys[3..6])
        {
            Assert.InRange(await TtlAsync(key), reservationKeys - 5_000, reservationKeys);
        }

        // The window keys keep the expiry they were created with; so do the reservation keys while more than half is left.
        await db.KeyExpireAsync("rpm{t:x}", TimeSpan.FromSeconds(30));
        await db.KeyExpireAsync("reserved{t:x}", TimeSpan.FromMinutes(20));
        Assert.Equal(0, await AdmitAsync("b", 5));
        Assert.InRange(await TtlAsync("rpm{t:x}"), 25_000, 30_000);
        Assert.Equal("2", (string?)await db.StringGetAsync("rpm{t:x}"));
        Assert.Equal("10", (string?)await db.StringGetAsync("tpm{t:x}"));
        Assert.InRange(await TtlAsync("reserved{t:x}"), 1_195_000, 1_200_000);

        // With half or less left (on the set the check reads), all three are renewed to the full ttl.
        await db.KeyExpireAsync("expiries{t:x}", TimeSpan.FromMinutes(14));
        Assert.Equal(0, await AdmitAsync("c", 5));
        foreach (var key in keys[3..6])
        {
            Assert.InRange(await TtlAsync(key), reservationKeys - 5_000, reservationKeys);
        }
        Assert.Equal("30", (string?)await db.StringGetAsync("reserved{t:x}"));
        Assert.Equal(3, await db.HashLengthAsync("reservations{t:x}"));
    }

    [Fact]
    public async Task A_batch_settles_each_request_once_corrects_each_token_window_and_counts_sums_past_ten_to_the_fourteen()
    {
        await using var server = await ModelGateway.Testing.RedisServer.StartAsync();
        await using var redis = await ConnectionMultiplexer.ConnectAsync(server.ConnectionString);
        var db = redis.GetDatabase();
        RedisKey[] keys = ["spent{t:y}", "reserved{t:y}", "reservations{t:y}", "expiries{t:y}", "marker{t:y}", "tpm:1{t:y}", "tpm:2{t:y}"];
        const long big = 1L << 50; // 1.1e15 µ$: Lua would print it as 1.1258999068426e+15
        await db.StringSetAsync("marker{t:y}", "r:epoch1");
        await db.StringSetAsync("spent{t:y}", big);
        await db.StringSetAsync("reserved{t:y}", 3 * big + 7);
        await db.HashSetAsync("reservations{t:y}", [new("a", big), new("b", 2 * big), new("other", 7)]);
        await db.SortedSetAddAsync("expiries{t:y}", [new("a", 1), new("b", 1), new("other", 1)]);
        await db.StringSetAsync("tpm:1{t:y}", 100);
        await db.StringSetAsync("tpm:2{t:y}", 50);

        // a and b were reserved; "gone" was released already (its reservation expired): its cost counts, nothing is released twice.
        var epoch = (string?)await AdmissionScripts.Settle.EvaluateAsync(db, keys,
            ["a", big, -10, 6, "b", big + 1, -5, 7, "gone", 3, -1, 7]);

        Assert.Equal("epoch1", epoch);
        Assert.Equal(((3 * big) + 4).ToString(System.Globalization.CultureInfo.InvariantCulture), (string?)await db.StringGetAsync("spent{t:y}"));
        Assert.Equal(7, (long)await db.StringGetAsync("reserved{t:y}"));
        Assert.Equal(["other"], (await db.HashKeysAsync("reservations{t:y}")).Select(v => (string)v!));
        Assert.Equal(["other"], (await db.SortedSetRangeByRankAsync("expiries{t:y}")).Select(v => (string)v!));
        Assert.Equal(90, (long)await db.StringGetAsync("tpm:1{t:y}"));
        Assert.Equal(44, (long)await db.StringGetAsync("tpm:2{t:y}"));

        // With the period not tracked (Redis lost it), the reservation is still released but the cost is left to the rebuild.
        await db.KeyDeleteAsync("marker{t:y}");
        Assert.Equal("", (string?)await AdmissionScripts.Settle.EvaluateAsync(db, keys, ["other", 5, 0, 6]));
        Assert.Equal(((3 * big) + 4).ToString(System.Globalization.CultureInfo.InvariantCulture), (string?)await db.StringGetAsync("spent{t:y}"));
        Assert.Equal(0, (long)await db.StringGetAsync("reserved{t:y}"));
        Assert.Equal(0, await db.HashLengthAsync("reservations{t:y}"));
    }

    /// <summary>An <see cref="IDatabase"/> whose script calls fail as a completed pipe writer does.</summary>
    public class CompletedWriterDatabase : DispatchProxy
    {
        protected override object? Invoke(MethodInfo? targetMethod, object?[]? args) => targetMethod?.Name switch
        {
            "get_Database" => 0,
            "ScriptEvaluateAsync" => Task.FromException<RedisResult>(new InvalidOperationException("Writing is not allowed after writer was completed.")),
            _ => throw new NotSupportedException(targetMethod?.Name),
        };
    }
}
