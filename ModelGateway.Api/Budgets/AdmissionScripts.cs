namespace ModelGateway.Api.Budgets;

/// <summary>
/// The Lua scripts behind admission and settlement. Redis runs a script atomically, so a check and the reservation it
/// guards cannot interleave with another replica's: that is what makes limits exact across replicas. Every key of one
/// tenant carries the same hash tag (<c>{t:tenant}</c>), so the scripts also run unchanged on Redis Cluster.
/// Money is integer micro-dollars; Lua numbers are doubles, exact up to 2^53 µ$ (about 9 billion dollars).
/// </summary>
internal static class AdmissionScripts
{
    /// <summary>
    /// KEYS: 1 rpm window, 2 tpm window, 3 spent, 4 reserved total, 5 reservations (hash id→µ$), 6 reservation expiries
    /// (zset id→ms), 7 period marker. ARGV: 1 rpm limit (0 none), 2 tpm limit (0 none), 3 budget µ$ (-1 none), 4 worst-case
    /// µ$, 5 worst-case tokens, 6 request id, 7 now ms, 8 reservation expiry ms, 9 window ttl ms, 10 reservation keys ttl ms.
    /// Returns {status, rpm used, tpm used, spent, reserved, epoch}: status 0 admitted, 1 rpm, 2 tpm, 3 budget refused,
    /// -1 period not tracked yet (rebuild from the ledger), -2 a rebuild is in progress. Nothing is written unless admitted.
    /// </summary>
    public static readonly RedisScript Admit = new("admit", """
        local rpmLimit = tonumber(ARGV[1])
        local tpmLimit = tonumber(ARGV[2])
        local budget = tonumber(ARGV[3])
        local cost = tonumber(ARGV[4])
        local tokens = tonumber(ARGV[5])
        local now = tonumber(ARGV[7])
        local spent = 0
        local reserved = 0
        local epoch = ''
        -- One read of everything the checks need (each redis.call costs Redis about as much as the command it runs).
        local v = redis.call('MGET', KEYS[7], KEYS[3], KEYS[4], KEYS[1], KEYS[2])
        if budget >= 0 then
          local marker = v[1]
          if not marker then return {-1, 0, 0, 0, 0, ''} end
          if string.sub(marker, 1, 1) == 'p' then return {-2, 0, 0, 0, 0, ''} end
          epoch = string.sub(marker, 3)
          spent = tonumber(v[2] or '0')
          reserved = tonumber(v[3] or '0')
          -- Reservations whose request never settled (its replica died) stop holding budget once they expire.
          local expired = redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', now)
          if #expired > 0 then
            for i = 1, #expired do
              local amount = redis.call('HGET', KEYS[5], expired[i])
              if amount then
                redis.call('DECRBY', KEYS[4], amount)
                redis.call('HDEL', KEYS[5], expired[i])
              end
            end
            redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now)
            reserved = tonumber(redis.call('GET', KEYS[4]) or '0')
          end
        end
        local rpmUsed = 0
        local tpmUsed = 0
        if rpmLimit > 0 then rpmUsed = tonumber(v[4] or '0') end
        if tpmLimit > 0 then tpmUsed = tonumber(v[5] or '0') end
        if rpmLimit > 0 and rpmUsed + 1 > rpmLimit then return {1, rpmUsed, tpmUsed, spent, reserved, epoch} end
        if tpmLimit > 0 and tpmUsed + tokens > tpmLimit then return {2, rpmUsed, tpmUsed, spent, reserved, epoch} end
        if budget >= 0 and spent + reserved + cost > budget then return {3, rpmUsed, tpmUsed, spent, reserved, epoch} end
        -- A minute's window key gets its expiry when this creates it (the key is that minute's alone).
        if rpmLimit > 0 then
          rpmUsed = redis.call('INCR', KEYS[1])
          if rpmUsed == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[9]) end
        end
        if tpmLimit > 0 then
          tpmUsed = redis.call('INCRBY', KEYS[2], tokens)
          if tpmUsed == tokens then redis.call('PEXPIRE', KEYS[2], ARGV[9]) end
        end
        if budget >= 0 then
          reserved = redis.call('INCRBY', KEYS[4], cost)
          redis.call('HSET', KEYS[5], ARGV[6], cost)
          redis.call('ZADD', KEYS[6], ARGV[8], ARGV[6])
          -- The reservation keys outlive any reservation in them (their ttl is twice the reservation timeout): renewed once
          -- half of it has passed, or when the set was just created (no expiry yet), rather than three calls every time.
          if redis.call('PTTL', KEYS[6]) < tonumber(ARGV[10]) / 2 then
            redis.call('PEXPIRE', KEYS[4], ARGV[10])
            redis.call('PEXPIRE', KEYS[5], ARGV[10])
            redis.call('PEXPIRE', KEYS[6], ARGV[10])
          end
        end
        return {0, rpmUsed, tpmUsed, spent, reserved, epoch}
        """);

    /// <summary>
    /// KEYS: 1 spent, 2 reserved total, 3 reservations, 4 reservation expiries, 5 period marker, 6 tpm window of the
    /// admission. ARGV: 1 request id, 2 actual µ$, 3 actual minus reserved tokens.
    /// Releases the reservation, corrects the token window, and adds the actual cost to spent if the period is tracked.
    /// Returns the epoch the cost was counted in ('' = not counted: the period's rebuild will count the ledger row).
    /// </summary>
    public static readonly RedisScript Settle = new("settle", """
        local amount = redis.call('HGET', KEYS[3], ARGV[1])
        if amount then
          if redis.call('DECRBY', KEYS[2], amount) < 0 then redis.call('SET', KEYS[2], 0, 'KEEPTTL') end
          redis.call('HDEL', KEYS[3], ARGV[1])
          redis.call('ZREM', KEYS[4], ARGV[1])
        end
        local delta = tonumber(ARGV[3])
        if delta ~= 0 and redis.call('EXISTS', KEYS[6]) == 1 then
          if redis.call('INCRBY', KEYS[6], delta) < 0 then redis.call('SET', KEYS[6], 0, 'KEEPTTL') end
        end
        local marker = redis.call('GET', KEYS[5])
        if not marker then return '' end
        redis.call('INCRBY', KEYS[1], ARGV[2])
        return string.sub(marker, 3)
        """);

    /// <summary>
    /// Starts a rebuild of a period's spend. KEYS: 1 marker, 2 spent. ARGV: 1 epoch, 2 pending ttl ms, 3 period ttl ms (0 = none).
    /// Sets the marker to pending and spent to 0 unless a marker exists; from then on settlements count into spent (tagged
    /// with the new epoch), and the rebuilder adds the ledger rows not tagged with it. Returns 1 if this caller rebuilds.
    /// </summary>
    public static readonly RedisScript BeginRebuild = new("begin_rebuild", """
        if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
        redis.call('SET', KEYS[1], 'p:' .. ARGV[1], 'PX', ARGV[2])
        if tonumber(ARGV[3]) > 0 then redis.call('SET', KEYS[2], 0, 'PX', ARGV[3]) else redis.call('SET', KEYS[2], 0) end
        return 1
        """);

    /// <summary>KEYS: 1 marker, 2 spent. ARGV: 1 epoch, 2 ledger sum µ$, 3 period ttl ms. Completes the rebuild if still ours.</summary>
    public static readonly RedisScript FinishRebuild = new("finish_rebuild", """
        if redis.call('GET', KEYS[1]) ~= 'p:' .. ARGV[1] then return 0 end
        redis.call('INCRBY', KEYS[2], ARGV[2])
        if tonumber(ARGV[3]) > 0 then redis.call('SET', KEYS[1], 'r:' .. ARGV[1], 'PX', ARGV[3]) else redis.call('SET', KEYS[1], 'r:' .. ARGV[1]) end
        return 1
        """);

    /// <summary>
    /// Puts this replica's in-flight reservations back after Redis lost them, so a rebuilt period cannot admit money those
    /// requests are about to spend. KEYS: 1 reserved total, 2 reservations, 3 expiries. ARGV: ttl ms, then (id, µ$, expiry ms)
    /// triples. Idempotent: a reservation that exists is left alone. That none of them has settled already is the caller's
    /// to ensure (<see cref="AdmissionService"/> sends it and the settlements in one order).
    /// </summary>
    public static readonly RedisScript Reregister = new("reregister", """
        for i = 2, #ARGV, 3 do
          if redis.call('HSETNX', KEYS[2], ARGV[i], ARGV[i + 1]) == 1 then
            redis.call('INCRBY', KEYS[1], ARGV[i + 1])
            redis.call('ZADD', KEYS[3], ARGV[i + 2], ARGV[i])
          end
        end
        redis.call('PEXPIRE', KEYS[1], ARGV[1])
        redis.call('PEXPIRE', KEYS[2], ARGV[1])
        redis.call('PEXPIRE', KEYS[3], ARGV[1])
        return 1
        """);
}
