namespace ModelGateway.Api.Budgets;

/// <summary>
/// The Lua scripts behind admission and settlement. Redis runs a script atomically, so a check and the reservation it
/// guards cannot interleave with another replica's: that is what makes limits exact across replicas. Every key of one
/// tenant carries the same hash tag (<c>{t:tenant}</c>), so the scripts also run unchanged on Redis Cluster.
/// Money is integer micro-dollars; Lua numbers are doubles, exact up to 2^53 µ$ (about 9 billion dollars).
/// </summary>
internal static class AdmissionScripts
{
    /// <summary>The most settlements one script carries (their ids go through Lua's <c>unpack</c>, whose stack is bounded).</summary>
    public const int MaxSettlementsPerScript = 200;

    /// <summary>
    /// The settlement of a batch of one tenant's requests of one period, shared by <see cref="Admit"/> (which settles the
    /// batch before it checks anything) and <see cref="Settle"/>. The batch is in ARGV from index <c>first</c>, four
    /// values per request: reservation id, actual µ$, actual minus reserved tokens, and the index in KEYS of the token
    /// window the request was admitted in. Releases the reservations, corrects the token windows, and adds the actual cost
    /// to spent if the period is tracked. Returns the epoch the cost was counted in ('' = not counted: the period's rebuild
    /// will count the ledger rows), or nil for an empty batch. Sums go out with <c>%d</c>: Lua's own number-to-string
    /// conversion switches to exponent notation above 10^14, which <c>INCRBY</c> refuses.
    /// </summary>
    private const string SettleFunction = """
        local function settle(spentKey, reservedKey, resvKey, expKey, markerKey, first)
          if #ARGV < first then return nil end
          local ids = {}
          local cost = 0
          local deltas = {}
          for i = first, #ARGV, 4 do
            ids[#ids + 1] = ARGV[i]
            cost = cost + tonumber(ARGV[i + 1])
            local d = tonumber(ARGV[i + 2])
            if d ~= 0 then
              local k = tonumber(ARGV[i + 3])
              deltas[k] = (deltas[k] or 0) + d
            end
          end
          local amounts = redis.call('HMGET', resvKey, unpack(ids))
          local released = 0
          local held = {}
          for i = 1, #ids do
            if amounts[i] then
              released = released + tonumber(amounts[i])
              held[#held + 1] = ids[i]
            end
          end
          if #held > 0 then
            if redis.call('DECRBY', reservedKey, string.format('%d', released)) < 0 then redis.call('SET', reservedKey, 0, 'KEEPTTL') end
            redis.call('HDEL', resvKey, unpack(held))
            redis.call('ZREM', expKey, unpack(held))
          end
          for k, d in pairs(deltas) do
            if redis.call('EXISTS', KEYS[k]) == 1 then
              if redis.call('INCRBY', KEYS[k], string.format('%d', d)) < 0 then redis.call('SET', KEYS[k], 0, 'KEEPTTL') end
            end
          end
          local marker = redis.call('GET', markerKey)
          if not marker then return '' end
          redis.call('INCRBY', spentKey, string.format('%d', cost))
          return string.sub(marker, 3)
        end

        """;

    /// <summary>
    /// KEYS: 1 rpm window, 2 tpm window, 3 spent, 4 reserved total, 5 reservations (hash id→µ$), 6 reservation expiries
    /// (zset id→ms), 7 period marker, 8… the token windows of settlements carried (when not the current one). ARGV: 1 rpm
    /// limit (0 none), 2 tpm limit (0 none), 3 budget µ$ (-1 none), 4 worst-case µ$, 5 worst-case tokens, 6 request id,
    /// 7 now ms, 8 reservation expiry ms, 9 window ttl ms, 10 reservation keys ttl ms, 11… settlements of the same tenant and
    /// period this replica has not sent yet (see <see cref="SettleFunction"/>), settled first so the checks see them.
    /// Returns {status, rpm used, tpm used, spent, reserved, epoch, settlement epoch}: status 0 admitted, 1 rpm, 2 tpm,
    /// 3 budget refused, -1 period not tracked yet (rebuild from the ledger), -2 a rebuild is in progress. Nothing of the
    /// admission is written unless admitted (the settlements are, whatever the status).
    /// </summary>
    public static readonly RedisScript Admit = new("admit", SettleFunction + """
        local settled = settle(KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], 11) or ''
        local function admit()
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
        end
        local r = admit()
        r[7] = settled
        return r
        """);

    /// <summary>
    /// KEYS: 1 spent, 2 reserved total, 3 reservations, 4 reservation expiries, 5 period marker, 6… the token windows the
    /// requests were admitted in. ARGV: the settlements, four values each (see <see cref="SettleFunction"/>).
    /// Returns the epoch the costs were counted in ('' = not counted: the period's rebuild will count the ledger rows).
    /// </summary>
    public static readonly RedisScript Settle = new("settle", SettleFunction + """
        return settle(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], 1) or ''
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
