namespace ModelGateway.Api.Budgets;

/// <summary>
/// The Lua scripts behind admission and settlement. Redis runs a script atomically, so a check and the reservation it
/// guards cannot interleave with another replica's: that is what makes limits exact across replicas. Every key of one
/// tenant carries the same hash tag (<c>{t:tenant}</c>), so the scripts also run unchanged on Redis Cluster.
/// Money is integer micro-dollars; Lua numbers are doubles, exact up to 2^53 µ$ (about 9 billion dollars).
/// Needs Redis 6.2 or later (<c>ZMSCORE</c>); Aspire's Redis container and Debian 12's redis-server (7.0) are.
/// </summary>
internal static class AdmissionScripts
{
    /// <summary>The most settlements one script carries (their ids go through Lua's <c>unpack</c>, whose stack is bounded).</summary>
    public const int MaxSettlementsPerScript = 200;

    /// <summary>
    /// What <see cref="Admit"/> and <see cref="Settle"/> share. A reservation is a member of one sorted set per tenant and
    /// period, <c>{request id}:{µ$ reserved}</c> scored by its expiry (ms): the member carries its amount, so releasing it
    /// takes one <c>ZREM</c> and expiring one a parse, not a second structure to read and update.
    /// <c>release</c> takes the settlement batch in ARGV from index <c>first</c>, four values per request: reservation
    /// member, actual µ$, actual minus reserved tokens, and the index in KEYS of the token window the request was admitted
    /// in. It removes the reservations still held and returns the µ$ they held, how many settlements the batch has, their
    /// cost, and the token corrections by KEYS index; the callers write the sums. Sums go out with <c>%d</c>: Lua's own
    /// number-to-string conversion switches to exponent notation above 10^14, which <c>INCRBY</c> refuses.
    /// </summary>
    private const string SharedFunctions = """
        local function fmt(x) return string.format('%d', x) end
        local function amount(member) return tonumber(string.match(member, ':(%d+)$')) or 0 end
        local function release(resvKey, first)
          local members = {}
          local cost = 0
          local deltas = {}
          for i = first, #ARGV, 4 do
            members[#members + 1] = ARGV[i]
            cost = cost + tonumber(ARGV[i + 1])
            local d = tonumber(ARGV[i + 2])
            if d ~= 0 then
              local k = tonumber(ARGV[i + 3])
              deltas[k] = (deltas[k] or 0) + d
            end
          end
          local released = 0
          if #members == 1 then
            if redis.call('ZREM', resvKey, members[1]) == 1 then released = amount(members[1]) end
          elseif #members > 1 then
            local scores = redis.call('ZMSCORE', resvKey, unpack(members))
            local held = {}
            for i = 1, #members do
              if scores[i] then
                released = released + amount(members[i])
                held[#held + 1] = members[i]
              end
            end
            if #held > 0 then redis.call('ZREM', resvKey, unpack(held)) end
          end
          return released, #members, cost, deltas
        end
        -- A token window of an earlier minute (the current one is written with the admission): corrected if it still exists.
        local function correct(key, d)
          if redis.call('EXISTS', key) == 1 and redis.call('INCRBY', key, fmt(d)) < 0 then redis.call('SET', key, 0, 'KEEPTTL') end
        end

        """;

    /// <summary>
    /// What <see cref="Retire"/> and <see cref="Reregister"/> share: adds the (member, µ$, expiry ms) triples in ARGV from
    /// index <c>first</c> to the reservation set, each unless it is there already, and returns the µ$ of those it added.
    /// </summary>
    private const string ReserveFunction = """
        local function reserve(resvKey, first)
          local added = 0
          for i = first, #ARGV, 3 do
            if redis.call('ZADD', resvKey, 'NX', ARGV[i + 2], ARGV[i]) == 1 then added = added + tonumber(ARGV[i + 1]) end
          end
          return added
        end

        """;

    /// <summary>
    /// KEYS: 1 rpm window, 2 tpm window, 3 spent, 4 reserved total, 5 reservations (see <see cref="SharedFunctions"/>),
    /// 6 period marker, 7… the token windows of settlements carried (when not the current one). ARGV: 1 rpm limit (0 none),
    /// 2 tpm limit (0 none), 3 budget µ$ (-1 none), 4 worst-case µ$, 5 worst-case tokens, 6 reservation member
    /// (<c>id:µ$</c>, the µ$ being ARGV 4; empty for a lease alone, no request of its own), 7 now ms, 8 reservation expiry
    /// ms, 9 window ttl ms, 10 reservation keys ttl ms, 11 lease requests wanted (0 none), 12 lease tokens wanted, 13 lease
    /// µ$ wanted, 14 lease id, 15 lease expiry ms, 16… settlements of the same tenant and period this replica has not sent
    /// yet, settled first so the checks see them.
    /// Returns {status, rpm used, tpm used, spent, reserved, epoch, settlement epoch, lease requests, lease tokens, lease µ$}:
    /// status 0 admitted, 1 rpm, 2 tpm, 3 budget refused, -1 period not tracked yet (rebuild from the ledger), -2 a rebuild
    /// is in progress. Nothing of the admission is written unless admitted (the settlements are, whatever the status). The
    /// settlements' corrections to the reserved total and to this minute's token window are folded into the admission's own
    /// writes. An admission carrying one settlement runs nine commands (sixteen before the amount moved into the member);
    /// alone, an admission runs seven and a settlement six (eight each before).
    /// A lease (see <see cref="BudgetOptions.LeaseLifetime"/>) is granted with an admitted request, or alone: at most an
    /// eighth of the headroom left in each limit the tenant has, and only if it holds two worst cases like this request's. Its
    /// requests are counted in the rpm window, its tokens in the tpm window, and its µ$ as one reservation, member
    /// <c>{lease id}:{µ$}</c> (a budgetless tenant's holds 0 µ$: the member still shows the lease is alive).
    /// </summary>
    public static readonly RedisScript Admit = new("admit", SharedFunctions + """
        local released, carried, settledCost, deltas = release(KEYS[5], 16)
        local rpmLimit = tonumber(ARGV[1])
        local tpmLimit = tonumber(ARGV[2])
        local budget = tonumber(ARGV[3])
        local worstCost = tonumber(ARGV[4])
        local worstTokens = tonumber(ARGV[5])
        local one = 1
        if ARGV[6] == '' then one = 0 end
        local cost = worstCost * one
        local tokens = worstTokens * one
        local now = tonumber(ARGV[7])
        -- One read of everything the checks need (each redis.call costs Redis about as much as the command it runs).
        local v = redis.call('MGET', KEYS[6], KEYS[3], KEYS[4], KEYS[1], KEYS[2])
        local marker = v[1]
        local reservedStored = tonumber(v[3] or '0')
        local reserved = math.max(0, reservedStored - released)
        local tpmStored = tonumber(v[5] or '0')
        local tpm = tpmStored
        for k, d in pairs(deltas) do
          if k ~= 2 then correct(KEYS[k], d) elseif v[5] then tpm = math.max(0, tpm + d) end
        end
        local spent = tonumber(v[2] or '0')
        local settled = ''
        if carried > 0 and marker then
          if settledCost ~= 0 then spent = redis.call('INCRBY', KEYS[3], fmt(settledCost)) end
          settled = string.sub(marker, 3)
        end
        -- This minute's token window and the reserved total, settlements and admission together, one command each.
        local function write(addTokens, addCost)
          if tpm + addTokens ~= tpmStored then
            tpm = redis.call('INCRBY', KEYS[2], fmt(tpm + addTokens - tpmStored))
            -- A minute's window key gets its expiry when this creates it (the key is that minute's alone).
            if not v[5] then redis.call('PEXPIRE', KEYS[2], ARGV[9]) end
          end
          if reserved + addCost ~= reservedStored then
            reserved = redis.call('INCRBY', KEYS[4], fmt(reserved + addCost - reservedStored))
          end
        end
        local function refuse(status, rpmUsed, epoch)
          write(0, 0)
          if status < 0 then return {status, 0, 0, 0, 0, '', settled, 0, 0, 0} end
          return {status, rpmUsed, tpmLimit > 0 and tpm or 0, spent, reserved, epoch, settled, 0, 0, 0}
        end
        local epoch = ''
        if budget >= 0 then
          if not marker then return refuse(-1) end
          if string.sub(marker, 1, 1) == 'p' then return refuse(-2) end
          epoch = string.sub(marker, 3)
          -- Reservations whose request never settled (its replica died) stop holding budget once they expire.
          local expired = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now)
          if #expired > 0 then
            for i = 1, #expired do reserved = reserved - amount(expired[i]) end
            reserved = math.max(0, reserved)
            redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
          end
        end
        local rpmUsed = 0
        if rpmLimit > 0 then rpmUsed = tonumber(v[4] or '0') end
        if one == 1 then
          if rpmLimit > 0 and rpmUsed + 1 > rpmLimit then return refuse(1, rpmUsed, epoch) end
          if tpmLimit > 0 and tpm + tokens > tpmLimit then return refuse(2, rpmUsed, epoch) end
          if budget >= 0 and spent + reserved + cost > budget then return refuse(3, rpmUsed, epoch) end
        end
        if tpmLimit <= 0 then tokens = 0 end
        if budget < 0 then cost = 0 end
        -- The lease: an eighth of the headroom left after this request at most, and worth it only for two more like it.
        local ln, lt, lc = tonumber(ARGV[11]), 0, 0
        if ln > 0 then
          if rpmLimit > 0 then ln = math.min(ln, math.floor((rpmLimit - rpmUsed - one) / 8)) end
          if tpmLimit > 0 then
            lt = math.min(tonumber(ARGV[12]), math.floor((tpmLimit - tpm - tokens) / 8))
            if lt < 2 * worstTokens then ln = 0 end
          end
          if budget >= 0 then
            lc = math.min(tonumber(ARGV[13]), math.floor((budget - spent - reserved - cost) / 8))
            if lc < 2 * worstCost then ln = 0 end
          end
          if ln < 2 then ln, lt, lc = 0, 0, 0 end
        end
        if rpmLimit > 0 and one + ln > 0 then
          rpmUsed = redis.call('INCRBY', KEYS[1], one + ln)
          if not v[4] then redis.call('PEXPIRE', KEYS[1], ARGV[9]) end
        end
        write(tokens + lt, cost + lc)
        local held = false
        if budget >= 0 and one == 1 then
          redis.call('ZADD', KEYS[5], ARGV[8], ARGV[6])
          held = true
        end
        if ln > 0 then
          redis.call('ZADD', KEYS[5], ARGV[15], ARGV[14] .. ':' .. fmt(lc))
          held = true
        end
        -- The reservation keys outlive any reservation in them (their ttl is twice the reservation timeout): renewed once
        -- half of it has passed, or when the set was just created (no expiry yet), rather than two calls every time.
        if held and redis.call('PTTL', KEYS[5]) < tonumber(ARGV[10]) / 2 then
          redis.call('PEXPIRE', KEYS[4], ARGV[10])
          redis.call('PEXPIRE', KEYS[5], ARGV[10])
        end
        return {0, rpmUsed, tpmLimit > 0 and tpm or 0, spent, reserved, epoch, settled, ln, lt, lc}
        """);

    /// <summary>
    /// KEYS: 1 spent, 2 reserved total, 3 reservations, 4 period marker, 5… the token windows the requests were admitted in.
    /// ARGV: the settlements, four values each (see <see cref="SharedFunctions"/>). Releases the reservations still held,
    /// corrects the token windows, and adds the actual cost to spent if the period is tracked. Returns the epoch the cost
    /// was counted in ('' = not counted: the period's rebuild will count the ledger rows).
    /// </summary>
    public static readonly RedisScript Settle = new("settle", SharedFunctions + """
        local released, n, cost, deltas = release(KEYS[3], 1)
        if n == 0 then return '' end
        if released > 0 and redis.call('DECRBY', KEYS[2], fmt(released)) < 0 then redis.call('SET', KEYS[2], 0, 'KEEPTTL') end
        for k, d in pairs(deltas) do correct(KEYS[k], d) end
        local marker = redis.call('GET', KEYS[4])
        if not marker then return '' end
        if cost ~= 0 then redis.call('INCRBY', KEYS[1], fmt(cost)) end
        return string.sub(marker, 3)
        """);

    /// <summary>
    /// Ends a lease. KEYS: 1 the rpm window of the lease's minute, 2 its tpm window, 3 reserved total, 4 reservations. ARGV:
    /// 1 lease member, 2 requests it did not use, 3 tokens it did not use, 4 reservation keys ttl ms, 5… (member, µ$,
    /// expiry ms) of the lease's requests still in flight. Those become reservations of their own (settled as any), the
    /// lease's reservation is released, and what it did not use goes back to the windows. If the lease is not there any more
    /// (Redis lost its data since it was granted), nothing goes back, for the windows may hold other requests now; the
    /// requests in flight are re-registered as after any loss. Returns 1 if the lease was there.
    /// </summary>
    public static readonly RedisScript Retire = new("retire", SharedFunctions + ReserveFunction + """
        local alive = redis.call('ZREM', KEYS[4], ARGV[1]) == 1
        local d = reserve(KEYS[4], 5)
        if alive then
          d = d - amount(ARGV[1])
          if tonumber(ARGV[2]) > 0 then correct(KEYS[1], -tonumber(ARGV[2])) end
          if tonumber(ARGV[3]) > 0 then correct(KEYS[2], -tonumber(ARGV[3])) end
        end
        if d ~= 0 then
          if redis.call('INCRBY', KEYS[3], fmt(d)) < 0 then redis.call('SET', KEYS[3], 0) end
          redis.call('PEXPIRE', KEYS[3], ARGV[4])
        end
        if #ARGV >= 5 then redis.call('PEXPIRE', KEYS[4], ARGV[4]) end
        return alive and 1 or 0
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
    /// requests are about to spend. KEYS: 1 reserved total, 2 reservations. ARGV: ttl ms, then (member, µ$, expiry ms)
    /// triples. Idempotent: a reservation that exists is left alone. That none of them has settled already is the caller's
    /// to ensure (<see cref="AdmissionService"/> sends it and the settlements in one order).
    /// </summary>
    public static readonly RedisScript Reregister = new("reregister", ReserveFunction + """
        local added = reserve(KEYS[2], 2)
        if added ~= 0 then redis.call('INCRBY', KEYS[1], string.format('%d', added)) end
        redis.call('PEXPIRE', KEYS[1], ARGV[1])
        redis.call('PEXPIRE', KEYS[2], ARGV[1])
        return 1
        """);
}
