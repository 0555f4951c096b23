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
