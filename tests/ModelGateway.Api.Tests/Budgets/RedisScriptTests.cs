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
        RedisKey[] keys = ["rpm{t:x}", "tpm{t:x}", "spent{t:x}", "reserved{t:x}", "reservations{t:x}", "marker{t:x}"];
        await db.StringSetAsync("marker{t:x}", "r:epoch");
        const long window = 120_000, reservationKeys = 1_800_000; // as Admission passes them: two minutes, twice the reservation timeout
        async Task<long> AdmitAsync(string id, long tokens)
        {
            var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            var r = (RedisResult[])(await AdmissionScripts.Admit.EvaluateAsync(db, keys,
                [100, 100_000, 1_000_000, 10, tokens, id + ":10", now, now + 900_000, window, reservationKeys, 0, 0, 0, "", 0]))!;
            return (long)r[0];
        }
        async Task<long> TtlAsync(RedisKey key) => (long)((await db.KeyTimeToLiveAsync(key))?.TotalMilliseconds ?? -1);

        Assert.Equal(0, await AdmitAsync("a", 5));
        foreach (var key in keys[..2])
        {
            Assert.InRange(await TtlAsync(key), window - 5_000, window);
        }
        foreach (var key in keys[3..5])
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

        // With half or less left (on the set the check reads), both are renewed to the full ttl.
        await db.KeyExpireAsync("reservations{t:x}", TimeSpan.FromMinutes(14));
        Assert.Equal(0, await AdmitAsync("c", 5));
        foreach (var key in keys[3..5])
        {
            Assert.InRange(await TtlAsync(key), reservationKeys - 5_000, reservationKeys);
        }
        Assert.Equal("30", (string?)await db.StringGetAsync("reserved{t:x}"));
        Assert.Equal(["a:10", "b:10", "c:10"], (await db.SortedSetRangeByRankAsync("reservations{t:x}")).Select(v => (string)v!).Order());
    }

    [Fact]
    public async Task A_batch_settles_each_request_once_corrects_each_token_window_and_counts_sums_past_ten_to_the_fourteen()
    {
        await using var server = await ModelGateway.Testing.RedisServer.StartAsync();
        await using var redis = await ConnectionMultiplexer.ConnectAsync(server.ConnectionString);
        var db = redis.GetDatabase();
        RedisKey[] keys = ["spent{t:y}", "reserved{t:y}", "reservations{t:y}", "marker{t:y}", "tpm:1{t:y}", "tpm:2{t:y}"];
        const long big = 1L << 50; // 1.1e15 µ$: Lua would print it as 1.1258999068426e+15
        await db.StringSetAsync("marker{t:y}", "r:epoch1");
        await db.StringSetAsync("spent{t:y}", big);
        await db.StringSetAsync("reserved{t:y}", 3 * big + 7);
        string a = $"a:{big}", b = $"b:{2 * big}";
        await db.SortedSetAddAsync("reservations{t:y}", [new(a, 1), new(b, 1), new("other:7", 1)]);
        await db.StringSetAsync("tpm:1{t:y}", 100);
        await db.StringSetAsync("tpm:2{t:y}", 50);

        // a and b were reserved; "gone" was released already (its reservation expired): its cost counts, nothing is released twice.
        var epoch = (string?)await AdmissionScripts.Settle.EvaluateAsync(db, keys,
            [a, big, -10, 5, b, big + 1, -5, 6, "gone:3", 3, -1, 6]);

        Assert.Equal("epoch1", epoch);
        Assert.Equal(((3 * big) + 4).ToString(System.Globalization.CultureInfo.InvariantCulture), (string?)await db.StringGetAsync("spent{t:y}"));
        Assert.Equal(7, (long)await db.StringGetAsync("reserved{t:y}"));
        Assert.Equal(["other:7"], (await db.SortedSetRangeByRankAsync("reservations{t:y}")).Select(v => (string)v!));
        Assert.Equal(90, (long)await db.StringGetAsync("tpm:1{t:y}"));
        Assert.Equal(44, (long)await db.StringGetAsync("tpm:2{t:y}"));

        // With the period not tracked (Redis lost it), the reservation is still released but the cost is left to the rebuild.
        await db.KeyDeleteAsync("marker{t:y}");
        Assert.Equal("", (string?)await AdmissionScripts.Settle.EvaluateAsync(db, keys, ["other:7", 5, 0, 5]));
        Assert.Equal(((3 * big) + 4).ToString(System.Globalization.CultureInfo.InvariantCulture), (string?)await db.StringGetAsync("spent{t:y}"));
        Assert.Equal(0, (long)await db.StringGetAsync("reserved{t:y}"));
        Assert.Equal(0, await db.SortedSetLengthAsync("reservations{t:y}"));
    }

    [Fact]
    public async Task An_admission_carrying_settlements_writes_them_with_its_own_counts_refused_or_not_and_releases_expired_reservations()
    {
        await using var server = await ModelGateway.Testing.RedisServer.StartAsync();
        await using var redis = await ConnectionMultiplexer.ConnectAsync(server.ConnectionString);
        var db = redis.GetDatabase();
        RedisKey[] keys = ["rpm{t:z}", "tpm:2{t:z}", "spent{t:z}", "reserved{t:z}", "reservations{t:z}", "marker{t:z}", "tpm:1{t:z}"];
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        await db.StringSetAsync("marker{t:z}", "r:e1");
        await db.StringSetAsync("spent{t:z}", 1_000);
        await db.StringSetAsync("reserved{t:z}", 600);
        await db.StringSetAsync("rpm{t:z}", 3);
        await db.StringSetAsync("tpm:2{t:z}", 40);
        await db.StringSetAsync("tpm:1{t:z}", 5);
        // p and q settle with this admission; "dead" belongs to a replica that died (its expiry has passed); "live" holds on.
        await db.SortedSetAddAsync("reservations{t:z}",
            [new("p:100", now + 60_000), new("q:200", now + 60_000), new("dead:250", now - 1), new("live:50", now + 60_000)]);
        async Task<RedisResult[]> AdmitAsync(long budget, string member, params RedisValue[] settlements) =>
            (RedisResult[])(await AdmissionScripts.Admit.EvaluateAsync(db, keys,
                [10, 1_000, budget, 400, 30, member, now, now + 60_000, 120_000, 1_800_000, 0, 0, 0, "", 0, .. settlements]))!;
        async Task<IEnumerable<string>> HeldAsync() => (await db.SortedSetRangeByRankAsync("reservations{t:z}")).Select(v => (string)v!).Order();

        // Refused on the budget (spent 1,100 + still held 50 + 400 > 1,500), yet the settlements and the expiry are written.
        var r = await AdmitAsync(1_500, "n:400",
            "p:100", 70, -25, 2,    // admitted this minute (KEYS[2]): 25 tokens fewer than reserved
            "q:200", 30, -9, 7);    // admitted last minute (KEYS[7]): more than that window holds, so it stops at 0
        Assert.Equal(3, (long)r[0]);
        Assert.Equal(15, (long)r[2]);                      // 40 - 25: the settled tokens count in the answer
        Assert.Equal(1_100, (long)r[3]);                   // spent + 70 + 30
        Assert.Equal(50, (long)r[4]);                      // 600 - 100 - 200 (settled) - 250 (expired)
        Assert.Equal("e1", (string?)r[6]);
        Assert.Equal(1_100, (long)await db.StringGetAsync("spent{t:z}"));
        Assert.Equal(50, (long)await db.StringGetAsync("reserved{t:z}"));
        Assert.Equal(15, (long)await db.StringGetAsync("tpm:2{t:z}"));
        Assert.Equal(0, (long)await db.StringGetAsync("tpm:1{t:z}"));
        Assert.Equal(3, (long)await db.StringGetAsync("rpm{t:z}"));
        Assert.Equal(["live:50"], await HeldAsync());

        // Admitted, carrying a settlement whose reservation had expired: it releases nothing, its cost counts, and its token
        // correction (more than the window holds) stops at 0 before the admission's own tokens are added.
        r = await AdmitAsync(2_000, "n:400", "gone:90", 20, -25, 2);
        Assert.Equal(0, (long)r[0]);
        Assert.Equal(4, (long)r[1]);
        Assert.Equal(30, (long)r[2]);
        Assert.Equal(1_120, (long)r[3]);
        Assert.Equal(450, (long)r[4]);                     // 50 still held + 400 reserved
        Assert.Equal(30, (long)await db.StringGetAsync("tpm:2{t:z}"));
        Assert.Equal(450, (long)await db.StringGetAsync("reserved{t:z}"));
        Assert.Equal(4, (long)await db.StringGetAsync("rpm{t:z}"));
        Assert.Equal(["live:50", "n:400"], await HeldAsync());

        // A period Redis lost: the settlement still releases what it held, the admission is sent to rebuild, nothing else moves.
        await db.KeyDeleteAsync("marker{t:z}");
        r = await AdmitAsync(2_000, "m:400", "n:400", 90, -10, 2);
        Assert.Equal(-1, (long)r[0]);
        Assert.Equal("", (string?)r[6]);
        Assert.Equal(50, (long)await db.StringGetAsync("reserved{t:z}"));
        Assert.Equal(20, (long)await db.StringGetAsync("tpm:2{t:z}"));
        Assert.Equal(1_120, (long)await db.StringGetAsync("spent{t:z}"));
        Assert.Equal(4, (long)await db.StringGetAsync("rpm{t:z}"));
        Assert.Equal(["live:50"], await HeldAsync());
    }

    [Fact]
    public async Task A_lease_takes_at_most_an_eighth_of_the_headroom_and_its_retirement_gives_back_what_it_did_not_use()
    {
        await using var server = await ModelGateway.Testing.RedisServer.StartAsync();
        await using var redis = await ConnectionMultiplexer.ConnectAsync(server.ConnectionString);
        var db = redis.GetDatabase();
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        RedisKey[] Keys(string t) => [$"rpm{{t:{t}}}", $"tpm{{t:{t}}}", $"spent{{t:{t}}}", $"reserved{{t:{t}}}", $"reservations{{t:{t}}}", $"marker{{t:{t}}}"];
        async Task<long[]> AdmitAsync(string t, long rpm, long tpm, long budget, string member, long leaseRequests, string leaseId)
        {
            var r = (RedisResult[])(await AdmissionScripts.Admit.EvaluateAsync(db, Keys(t),
                [rpm, tpm, budget, 400, 30, member, now, now + 900_000, 120_000, 1_800_000,
                    leaseRequests, leaseRequests * 30, leaseRequests * 400, leaseId, now + 901_000]))!;
            return [(long)r[0], (long)r[1], (long)r[2], (long)r[3], (long)r[4], (long)r[7], (long)r[8], (long)r[9]];
        }
        async Task<long> RetireAsync(string t, string lease, long requests, long tokens, params RedisValue[] inFlight)
        {
            var k = Keys(t);
            return (long)await AdmissionScripts.Retire.EvaluateAsync(db, [k[0], k[1], k[3], k[4]], [lease, requests, tokens, 1_800_000, .. inFlight]);
        }
        async Task<long> GetAsync(string key) => (long)await db.StringGetAsync(key);
        async Task<IEnumerable<string>> HeldAsync(string t) => (await db.SortedSetRangeByRankAsync($"reservations{{t:{t}}}")).Select(v => (string)v!).Order();
        await db.StringSetAsync("marker{t:l}", "r:e1");

        // Admitted with a lease: 12 requests ((100 - 1) / 8), 1,246 tokens ((10,000 - 30) / 8), 12,450 µ$ ((100,000 - 400) / 8).
        Assert.Equal((long[])[0, 13, 1_276, 0, 12_850, 12, 1_246, 12_450], await AdmitAsync("l", 100, 10_000, 100_000, "a:400", 50, "L1"));
        Assert.Equal(["L1:12450", "a:400"], await HeldAsync("l"));
        Assert.InRange((long)(await db.KeyTimeToLiveAsync("reservations{t:l}"))!.Value.TotalMilliseconds, 1_795_000, 1_800_000);

        // A lease alone (no request of its own): the eighths of what is left now; no request counted or reserved.
        Assert.Equal((long[])[0, 23, 2_366, 0, 23_743, 10, 1_090, 10_893], await AdmitAsync("l", 100, 10_000, 100_000, "", 50, "L2"));
        Assert.Equal(["L1:12450", "L2:10893", "a:400"], await HeldAsync("l"));

        // L1 admitted five requests (150 tokens): two still in flight become reservations of their own; seven requests and
        // 1,096 tokens go back; its 12,450 µ$ are released.
        Assert.Equal(1, await RetireAsync("l", "L1:12450", 7, 1_096, "r1:400", 400, now + 900_000, "r2:400", 400, now + 900_000));
        Assert.Equal(["L2:10893", "a:400", "r1:400", "r2:400"], await HeldAsync("l"));
        Assert.Equal(23_743 - 12_450 + 800, await GetAsync("reserved{t:l}"));
        Assert.Equal(16, await GetAsync("rpm{t:l}"));
        Assert.Equal(2_366 - 1_096, await GetAsync("tpm{t:l}"));

        // Retired twice (a retry): nothing moves.
        Assert.Equal(0, await RetireAsync("l", "L1:12450", 7, 1_096, "r1:400", 400, now + 900_000));
        Assert.Equal(23_743 - 12_450 + 800, await GetAsync("reserved{t:l}"));
        Assert.Equal(16, await GetAsync("rpm{t:l}"));

        // Redis lost the reservations (and other requests may fill the windows anew): nothing goes back to the windows, and
        // the lease's request in flight is re-registered.
        await db.KeyDeleteAsync(["reservations{t:l}", "reserved{t:l}"]);
        Assert.Equal(0, await RetireAsync("l", "L2:10893", 5, 500, "r3:400", 400, now + 900_000));
        Assert.Equal(["r3:400"], await HeldAsync("l"));
        Assert.Equal(400, await GetAsync("reserved{t:l}"));
        Assert.Equal(16, await GetAsync("rpm{t:l}"));
        Assert.Equal(1_270, await GetAsync("tpm{t:l}"));

        // Near a limit: an eighth of the headroom holds fewer than two worst cases, so no lease; the request alone is admitted.
        await db.StringSetAsync("marker{t:n}", "r:e1");
        Assert.Equal((long[])[0, 0, 0, 0, 400, 0, 0, 0], await AdmitAsync("n", 0, 0, 6_000, "b:400", 50, "N1"));
        Assert.Equal(["b:400"], await HeldAsync("n"));
        Assert.Equal((long[])[0, 1, 0, 0, 0, 0, 0, 0], await AdmitAsync("m", 10, 0, -1, "c:400", 50, "M1"));   // (10 - 1) / 8 = 1 request

        // A budgetless tenant's lease holds 0 µ$; its member shows it is alive, so its retirement gives back its requests.
        Assert.Equal((long[])[0, 9, 0, 0, 0, 8, 0, 0], await AdmitAsync("f", 1_000, 0, -1, "d:400", 8, "F1"));
        Assert.Equal(["F1:0"], await HeldAsync("f"));
        Assert.Equal(1, await RetireAsync("f", "F1:0", 8, 0));
        Assert.Equal(1, await GetAsync("rpm{t:f}"));
        Assert.Empty(await HeldAsync("f"));
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
