using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Options;
using ModelGateway.Api.Errors;
using ModelGateway.Api.Ledger;
using ModelGateway.Api.Providers;
using ModelGateway.Api.Tenancy;
using ModelGateway.Policy.Rules;
using Npgsql;
using StackExchange.Redis;

namespace ModelGateway.Api.Budgets;

/// <summary>What an admitted request holds until it settles.</summary>
internal sealed class AdmissionTicket
{
    public required Guid RequestId { get; init; }

    /// <summary>
    /// The reservation's member in Redis's reservation set: the request id (32 hex digits) and the µ$ it reserves, written
    /// once for admission and settlement (see <see cref="AdmissionScripts"/>).
    /// </summary>
    public required string ReservationMember { get; init; }
    public required Caller Caller { get; init; }
    public required string Alias { get; init; }
    public required BudgetPeriod Period { get; init; }
    public required bool Budgeted { get; init; }
    public required long ReservedMicroUsd { get; init; }
    public required int ReservedTokens { get; init; }
    public required long MinuteWindow { get; init; }
    public required DateTimeOffset AdmittedAt { get; init; }
    public required long StartedTimestamp { get; init; }
    public long ReservationExpiryMs { get; init; }

    /// <summary>Admitted on the per-replica limit while Redis was unreachable (<see cref="RedisOutageMode.FailOpen"/>).</summary>
    public bool AdmittedLocally { get; init; }

    /// <summary>The lease it was admitted from (no Redis round trip), if any; its reservation holds this request's worst case.</summary>
    public AdmissionLease? Lease { get; set; }
    private int _settled;

    /// <summary>True the first time only: a ticket settles once even if two code paths try.</summary>
    public bool TryMarkSettled() => Interlocked.Exchange(ref _settled, 1) == 0;
}

/// <summary>How a request ended, for settlement and the ledger row.</summary>
internal readonly record struct Settlement(string Status, int HttpStatus, string? Provider, string? UpstreamModel, TokenUsage Usage,
    long CostMicroUsd, bool Stream, Tracing.W3CTraceId? TraceId);

/// <summary>The OpenAI-style rate-limit headers (https://platform.openai.com/docs/guides/rate-limits#rate-limits-in-headers).</summary>
internal readonly record struct RateLimitState(int? RequestLimit, long RequestsUsed, int? TokenLimit, long TokensUsed, TimeSpan ResetIn)
{
    public void Apply(HttpResponse response)
    {
        var reset = Math.Max(1, (int)Math.Ceiling(ResetIn.TotalSeconds)).ToString(CultureInfo.InvariantCulture) + "s";
        if (RequestLimit is { } rl)
        {
            response.Headers["x-ratelimit-limit-requests"] = rl.ToString(CultureInfo.InvariantCulture);
            response.Headers["x-ratelimit-remaining-requests"] = Math.Max(0, rl - RequestsUsed).ToString(CultureInfo.InvariantCulture);
            response.Headers["x-ratelimit-reset-requests"] = reset;
        }
        if (TokenLimit is { } tl)
        {
            response.Headers["x-ratelimit-limit-tokens"] = tl.ToString(CultureInfo.InvariantCulture);
            response.Headers["x-ratelimit-remaining-tokens"] = Math.Max(0, tl - TokensUsed).ToString(CultureInfo.InvariantCulture);
            response.Headers["x-ratelimit-reset-tokens"] = reset;
        }
    }
}

/// <summary>Admitted with a ticket, or refused with an error (and possibly a retry-after).</summary>
internal readonly record struct AdmissionResult(AdmissionTicket? Ticket, OpenAIError? Error, TimeSpan? RetryAfter, RateLimitState Limits)
{
    /// <summary>Why a refused request was refused, for metrics: finer than the error code (both rate limits share one).</summary>
    public string? RefusalReason { get => field ?? Error?.Code; init; }

    public void ApplyHeaders(HttpResponse response)
    {
        Limits.Apply(response);
        if (RetryAfter is { } ra)
        {
            response.Headers.RetryAfter = Math.Max(1, (long)Math.Ceiling(ra.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
        }
    }
}

/// <summary>
/// Admission (step 2 of the request path) and settlement (step 7), one Redis round trip each in the steady state.
/// Rate limits are fixed one-minute windows aligned to the UTC minute (exact, one counter per window; a client can burst
/// up to twice the limit across a minute boundary, which OpenAI's own limits also allow); tokens per minute are charged at
/// the worst case on admission and corrected to the actual on settlement. The budget is a reservation of the worst-case
/// cost against <c>budget − spent − reserved</c>; settlement replaces it with the actual cost. Spend counters live per
/// tenant and period; when a period's marker is missing (Redis lost its data, a new period began, an admin reset it) the
/// spend is rebuilt from the ledger before anything is admitted (see <see cref="AdmissionScripts"/>).
/// </summary>
internal sealed partial class AdmissionService(
    IConnectionMultiplexer redis,
    NpgsqlDataSource db,
    DurableBatchWriter<LedgerRow> ledger,
    LocalAdmissionLimiter localLimiter,
    IOptions<BudgetOptions> options,
    TimeProvider time,
    ILogger<AdmissionService> logger)
{
    private readonly BudgetOptions _options = options.Value;

    /// <summary>A lease's life in <see cref="Stopwatch"/> ticks (0: leases off): at most half the rebuild grace (see <see cref="BudgetOptions.LeaseLifetime"/>).</summary>
    private readonly long _leaseLifeTicks = (long)(Math.Min(options.Value.LeaseLifetime.TotalSeconds, options.Value.RebuildGrace.TotalSeconds / 2)
        * Stopwatch.Frequency);
    private readonly ConcurrentDictionary<Guid, AdmissionTicket> _inFlight = new();

    /// <summary>
    /// Orders settlements, admissions and re-registrations on the Redis connection. A settlement leaves <see cref="_inFlight"/>
    /// and is queued under this lock, and sent under it (on its own, or carried by an admission, which is sent under it too);
    /// a re-registration reads <see cref="_inFlight"/> and is sent under it. So a reservation a
    /// re-registration puts back belongs to a request whose settlement is sent after it, and Redis runs them in that order
    /// (one connection): a settled reservation is never put back. Held only while the commands are queued (microseconds).
    /// </summary>
    private readonly Lock _sendOrder = new();

    /// <summary>Settlements not sent yet, by tenant and period (see <see cref="SettleAsync"/>). Under <see cref="_sendOrder"/>.</summary>
    private readonly Dictionary<(string Tenant, string Period), PendingBatch> _pending = [];
    private bool _flushScheduled;

    /// <summary>How many tickets <see cref="_inFlight"/> holds (its own Count takes every lock of the dictionary).</summary>
    private int _inFlightCount;
    private readonly ConcurrentDictionary<string, Lazy<Task>> _rebuilds = new(StringComparer.Ordinal);

    public async Task<AdmissionResult> AdmitAsync(Caller caller, string alias, int worstCaseTokens, long worstCaseMicroUsd,
        CancellationToken cancellationToken)
    {
        var tenant = caller.Tenant;
        if (!await ledger.ReserveSlotAsync(cancellationToken))
        {
            LogLedgerFull(logger, ledger.SlotsInUse);
            return new AdmissionResult(null, new OpenAIError(503,
                "The gateway cannot record usage right now (its usage store is unavailable and the buffer is full); retry shortly.",
                "api_error", null, "ledger_unavailable"), TimeSpan.FromSeconds(1), default);
        }
        var admitted = false;
        var grantWaits = 0;
        try
        {
            var deadline = DateTime.UtcNow + _options.RebuildTimeout * 1.5;
            while (true)
            {
                var now = time.GetUtcNow();
                var period = BudgetPeriod.For(tenant.BudgetPeriod, now);
                var minute = now.ToUnixTimeMilliseconds() / 60_000;
                var resetIn = TimeSpan.FromMilliseconds((minute + 1) * 60_000 - now.ToUnixTimeMilliseconds());
                var requestId = Uuid7.New(now);
                var reservationMember = string.Create(CultureInfo.InvariantCulture, $"{requestId:N}:{worstCaseMicroUsd}");
                var expiry = now.ToUnixTimeMilliseconds() + (long)_options.ReservationTimeout.TotalMilliseconds;
                // The same ticket whether Redis admitted the request or the local fail-open limiter did.
                AdmissionTicket NewTicket(bool admittedLocally) => new()
                {
                    RequestId = requestId,
                    ReservationMember = reservationMember,
                    Caller = caller,
                    Alias = alias,
                    Period = period,
                    Budgeted = tenant.BudgetMicroUsd is not null,
                    ReservedMicroUsd = tenant.BudgetMicroUsd is null ? 0 : worstCaseMicroUsd,
                    ReservedTokens = worstCaseTokens,
                    MinuteWindow = minute,
                    AdmittedAt = now,
                    StartedTimestamp = Stopwatch.GetTimestamp(),
                    ReservationExpiryMs = expiry,
                    AdmittedLocally = admittedLocally,
                };
                // A lease of this replica may admit it in memory (see AdmissionLeases.cs); otherwise Redis does, and may
                // grant a lease for the requests after it.
                LeaseSlot? slot = null;
                AdmissionTicket? candidate = null;
                var leaseWanted = 0;
                if (_leaseLifeTicks > 0)
                {
                    slot = SlotFor(tenant.Id, period);
                    candidate = NewTicket(admittedLocally: false);
                    if (TryAdmitFromLease(slot, candidate, minute, worstCaseTokens, tenant.BudgetMicroUsd is null ? 0 : worstCaseMicroUsd,
                            countDemand: grantWaits == 0, out leaseWanted, out var grantInFlight))
                    {
                        admitted = true;
                        return new AdmissionResult(candidate, null, null, candidate.Lease!.Limits);
                    }
                    // A grant is on its way (a burst outran the lease, or the lease ran out before its refill came): wait
                    // for it rather than send one more script to Redis, which would queue behind the grant anyway.
                    if (grantInFlight is not null && grantWaits < MaxGrantWaits)
                    {
                        grantWaits++;
                        if (await WaitForGrantAsync(grantInFlight, cancellationToken))
                        {
                            continue;
                        }
                    }
                }
                var keys = KeysFor(tenant.Id, period);
                var leaseId = leaseWanted > 0 ? Guid.NewGuid().ToString("N") : "";
                RedisResult[] r;
                try
                {
                    var sent = SendAdmission(tenant.Id, period, keys, minute,
                        AdmitArgs(tenant, worstCaseMicroUsd, worstCaseTokens, reservationMember, now.ToUnixTimeMilliseconds(), expiry,
                            leaseWanted, leaseId));
                    r = (RedisResult[])(await sent)!;
                }
                // The filter runs for any exception: a grant asked for with this admission ends whatever failed it.
                catch (Exception ex) when (FaultEndsGrant(slot, leaseWanted) && ex is RedisException or TimeoutException)
                {
                    if (slot is not null)
                    {
                        CheckLeaseEpoch(tenant.Id, period.Id, null, failed: true);
                    }
                    LogRedisUnavailable(logger, ex.Message);
                    if (_options.WhenRedisUnavailable != RedisOutageMode.FailOpen)
                    {
                        return Unavailable("The gateway cannot check rate limits and budgets right now; retry shortly.");
                    }
                    if (!localLimiter.TryAcquire(tenant, out var wait))
                    {
                        return new AdmissionResult(null, new OpenAIError(429,
                            "Rate limit reached for requests per minute while the gateway runs on local limits (its shared limit store is unavailable); retry later.",
                            "rate_limit_error", null, "rate_limit_exceeded"), wait, default);
                    }
                    // Admitted on the local limit. The ticket is an ordinary one: settlement tries Redis (and counts the cost
                    // if it is back), the ledger row is written either way, and a rebuild after Redis lost its data counts it.
                    var local = NewTicket(admittedLocally: true);
                    Track(local);
                    admitted = true;
                    LogAdmittedLocally(logger, tenant.Id);
                    return new AdmissionResult(local, null, null, default);
                }
                var status = (int)r[0];
                var limits = new RateLimitState(tenant.RequestsPerMinute, (long)r[1], tenant.TokensPerMinute, (long)r[2], resetIn);
                if (slot is not null)
                {
                    OnAdmitReply(slot, tenant, period, minute, r, leaseId, granting: leaseWanted > 0, limits);
                }
                switch (status)
                {
                    case 0:
                        var ticket = candidate ?? NewTicket(admittedLocally: false);
                        Track(ticket);
                        admitted = true;
                        return new AdmissionResult(ticket, null, null, limits);
                    case 1:
                        return new AdmissionResult(null, new OpenAIError(429,
                            $"Rate limit reached for requests per minute (limit {tenant.RequestsPerMinute}); retry after the window resets.",
                            "rate_limit_error", null, "rate_limit_exceeded"), resetIn, limits) { RefusalReason = "rate_limit_rpm" };
                    case 2:
                        return new AdmissionResult(null, new OpenAIError(429,
                            $"Rate limit reached for tokens per minute (limit {tenant.TokensPerMinute}, this request may use up to {worstCaseTokens}); retry after the window resets.",
                            "rate_limit_error", null, "rate_limit_exceeded"), resetIn, limits) { RefusalReason = "rate_limit_tpm" };
                    case 3:
                        // Refused only because of reservations in flight: they settle within seconds. Over the budget
                        // itself: it frees up when the period ends (never, for a total budget).
                        var spent = (long)r[3];
                        var freesSoon = spent + worstCaseMicroUsd <= tenant.BudgetMicroUsd;
                        TimeSpan? retry = freesSoon ? TimeSpan.FromSeconds(1) : period.Resets ? period.End - now : null;
                        return new AdmissionResult(null, new OpenAIError(429,
                            $"Budget exceeded: this request may cost up to ${worstCaseMicroUsd / 1_000_000m:0.######}, which is more than the "
                            + $"remaining {tenant.BudgetPeriod} budget (${Math.Max(0, tenant.BudgetMicroUsd!.Value - spent - (long)r[4]) / 1_000_000m:0.######}).",
                            "insufficient_quota", null, "budget_exceeded"), retry, limits);
                    case -1:
                        await RunOnceAsync("rebuild|" + (string)keys.Marker!, () => RebuildAsync(tenant.Id, period, keys));
                        break;
                    default:
                        // Another replica is rebuilding: put back what this replica has in flight, then wait for it.
                        await RunOnceAsync("rereg|" + (string)keys.Marker!, () => ReregisterAsync(tenant.Id, period, keys));
                        await Task.Delay(25, cancellationToken);
                        break;
                }
                if (DateTime.UtcNow > deadline)
                {
                    return Unavailable("The gateway is rebuilding this tenant's spend counters; retry shortly.");
                }
            }
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or NpgsqlException)
        {
            LogRedisUnavailable(logger, ex.Message);
            return Unavailable("The gateway cannot check budgets right now; retry shortly.");
        }
        finally
        {
            if (!admitted)
            {
                ledger.ReleaseSlot();
            }
        }
    }

    private static AdmissionResult Unavailable(string message) =>
        new(null, new OpenAIError(503, message, "api_error", null, "admission_unavailable"), TimeSpan.FromSeconds(1), default);

    /// <summary>
    /// Replaces the reservation with the actual cost and appends the ledger row. Runs on every exit of an admitted request
    /// (answer, stream end, failure, client disconnect); never throws: if Redis is unreachable the reservation expires on its
    /// own and the row is still written (counted by the next rebuild if Redis lost the period). The ledger slot stays taken
    /// until the row is queued, so shutdown still waits for it.
    /// While other requests are in flight on this replica, the settlement is queued, not sent (see
    /// <see cref="BudgetOptions.SettlementWindow"/>): the next admission of the same
    /// tenant and period this replica sends carries it in its own script, which settles before it checks anything, and what
    /// no admission took within the window goes in one <see cref="AdmissionScripts.Settle"/> per tenant and period. So an
    /// admission sent after this call returns (the same client's next request included) still sees this settlement, and
    /// under load a request costs Redis one script instead of two (docs/benchmark.md, session 11).
    /// </summary>
    public async Task SettleAsync(AdmissionTicket ticket, Settlement settlement)
    {
        if (!ticket.TryMarkSettled())
        {
            return;
        }
        var tenant = ticket.Caller.Tenant;
        var tokenDelta = tenant.TokensPerMinute is null ? 0 : settlement.Usage.TotalTokens - ticket.ReservedTokens;
        var pending = new PendingSettlement(ticket.ReservationMember, settlement.CostMicroUsd, tokenDelta, ticket.MinuteWindow);
        string? epoch = null;
        try
        {
            var scheduleFlush = false;
            lock (_sendOrder)
            {
                // Held only while other requests are in flight here: they are the admissions that may carry it. An idle
                // replica sends it at once, so the other replicas see it as soon as they would have without a window.
                var othersInFlight = _inFlight.TryRemove(ticket.RequestId, out _)
                    ? Interlocked.Decrement(ref _inFlightCount) > 0
                    : Volatile.Read(ref _inFlightCount) > 0;
                var group = (tenant.Id, ticket.Period.Id);
                if (!_pending.TryGetValue(group, out var batch))
                {
                    _pending[group] = batch = new PendingBatch(tenant.Id, ticket.Period.Id, KeysFor(tenant.Id, ticket.Period));
                }
                batch.Items.Add(pending);
                if (!othersInFlight || _options.SettlementWindow <= TimeSpan.Zero || batch.Items.Count >= AdmissionScripts.MaxSettlementsPerScript)
                {
                    _pending.Remove(group);
                    SendSettlements(batch);
                }
                else if (!_flushScheduled)
                {
                    _flushScheduled = scheduleFlush = true;
                }
            }
            if (scheduleFlush)
            {
                _ = FlushAfterWindowAsync();
            }
            epoch = await pending.Epoch.Task;
        }
        catch (Exception ex)
        {
            // Settlement completes off the request (see ChatCompletionsApi): nothing may escape unobserved.
            LogSettleFaulted(logger, ex, tenant.Id);
        }
        finally
        {
            ledger.Write(new LedgerRow(ticket.RequestId, tenant.Id, ticket.Caller.KeyId, ticket.Alias, settlement.Provider,
                settlement.UpstreamModel, settlement.Usage.InputTokens, settlement.Usage.OutputTokens, settlement.Usage.CachedInputTokens,
                settlement.CostMicroUsd, settlement.Status, settlement.HttpStatus,
                Stopwatch.GetElapsedTime(ticket.StartedTimestamp).TotalMilliseconds, settlement.TraceId, settlement.Stream,
                settlement.Usage.Estimated, epoch, ticket.AdmittedAt));
        }
    }

    /// <summary>
    /// Sends an admission script, carrying the settlements of the same tenant and period waiting to be sent. Under
    /// <see cref="_sendOrder"/>, so the settlements it takes are sent in the order they were made.
    /// </summary>
    private Task<RedisResult> SendAdmission(string tenantId, BudgetPeriod period, TenantKeys keys, long minute, RedisValue[] args)
    {
        RedisKey[] admitKeys = [keys.Rpm(minute), keys.Tpm(minute), keys.Spent, keys.Reserved, keys.Reservations, keys.Marker];
        lock (_sendOrder)
        {
            if (_pending.Count == 0 || !_pending.Remove((tenantId, period.Id), out var batch))
            {
                return AdmissionScripts.Admit.EvaluateAsync(redis.GetDatabase(), admitKeys, args);
            }
            List<RedisKey> keyList = [.. admitKeys];
            List<RedisValue> argList = [.. args];
            AddSettlementArgs(batch, keys, keyList, argList, currentMinute: minute);
            var sent = AdmissionScripts.Admit.EvaluateAsync(redis.GetDatabase(), [.. keyList], [.. argList]);
            _ = CompleteSettlementsAsync(batch, sent, static r => (string?)((RedisResult[])r!)[6]);
            return sent;
        }
    }

    /// <summary>Sends a batch of settlements on its own. Called under <see cref="_sendOrder"/>.</summary>
    private void SendSettlements(PendingBatch batch)
    {
        var keys = batch.Keys;
        List<RedisKey> keyList = [keys.Spent, keys.Reserved, keys.Reservations, keys.Marker];
        var argList = new List<RedisValue>(batch.Items.Count * 4);
        AddSettlementArgs(batch, keys, keyList, argList, currentMinute: null);
        var sent = AdmissionScripts.Settle.EvaluateAsync(redis.GetDatabase(), [.. keyList], [.. argList]);
        _ = CompleteSettlementsAsync(batch, sent, static r => (string?)r);
    }

    /// <summary>
    /// Appends a batch's four values per settlement; a token window is added to the keys once (the admission's own window,
    /// key 2, when the settlement was admitted in the current minute).
    /// </summary>
    private static void AddSettlementArgs(PendingBatch batch, TenantKeys keys, List<RedisKey> keyList, List<RedisValue> argList, long? currentMinute)
    {
        long lastMinute = -1;
        var lastIndex = 0;
        foreach (var p in batch.Items)
        {
            if (p.Minute != lastMinute)
            {
                lastMinute = p.Minute;
                if (p.Minute == currentMinute)
                {
                    lastIndex = 2;
                }
                else
                {
                    var key = keys.Tpm(p.Minute);
                    lastIndex = keyList.IndexOf(key) + 1;
                    if (lastIndex == 0)
                    {
                        keyList.Add(key);
                        lastIndex = keyList.Count;
                    }
                }
            }
            argList.Add(p.Member);
            argList.Add(p.CostMicroUsd);
            argList.Add(p.TokenDelta);
            argList.Add(lastIndex);
        }
    }

    /// <summary>
    /// The epoch as the one string already kept when it is the same text (it changes only when Redis loses its data): every
    /// script's answer is a new string, and the ledger rows hold theirs until stored, which in a backlog promoted them to gen2.
    /// </summary>
    private string KeepEpoch(string epoch)
    {
        var kept = Volatile.Read(ref _keptEpoch);
        if (kept == epoch)
        {
            return kept;
        }
        Volatile.Write(ref _keptEpoch, epoch);
        return epoch;
    }

    private string? _keptEpoch;

    /// <summary>Gives each settlement of a batch the epoch its script answered (null when Redis could not be reached).</summary>
    private async Task CompleteSettlementsAsync(PendingBatch batch, Task<RedisResult> sent, Func<RedisResult, string?> epochOf)
    {
        string? epoch = null;
        try
        {
            var s = epochOf(await sent);
            epoch = string.IsNullOrEmpty(s) ? null : KeepEpoch(s);
            if (_leaseLifeTicks > 0)
            {
                CheckLeaseEpoch(batch.TenantId, batch.PeriodId, epoch);
            }
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            LogSettleFailed(logger, batch.TenantId, batch.Items.Count, ex.Message);
            if (_leaseLifeTicks > 0)
            {
                CheckLeaseEpoch(batch.TenantId, batch.PeriodId, null, failed: true);
            }
        }
        catch (Exception ex)
        {
            LogSettleFaulted(logger, ex, batch.TenantId);
        }
        foreach (var p in batch.Items)
        {
            p.Epoch.TrySetResult(epoch);
        }
    }

    /// <summary>Sends, once the settlement window has passed, every settlement no admission has carried.</summary>
    private async Task FlushAfterWindowAsync()
    {
        // Real time, not the injected TimeProvider: the window is how long a settlement waits for a ride, not a business rule.
        await Task.Delay(_options.SettlementWindow).ConfigureAwait(false);
        lock (_sendOrder)
        {
            _flushScheduled = false;
            FlushPending(tenantId: null);
        }
    }

    /// <summary>Sends the waiting settlements (of one tenant, or all). Called under <see cref="_sendOrder"/>.</summary>
    private void FlushPending(string? tenantId)
    {
        if (_pending.Count == 0)
        {
            return;
        }
        foreach (var (group, batch) in _pending.ToArray())
        {
            if (tenantId is null || group.Tenant == tenantId)
            {
                _pending.Remove(group);
                SendSettlements(batch);
            }
        }
    }

    /// <summary>Forgets the Redis spend of a tenant's current periods, so the next admission rebuilds from the ledger (which the caller has marked reset).</summary>
    public async Task ForgetSpendAsync(string tenantId)
    {
        lock (_sendOrder)
        {
            FlushPending(tenantId); // settlements made before the reset are sent before it, as they were made
        }
        var now = time.GetUtcNow();
        var rdb = redis.GetDatabase();
        foreach (var name in BudgetPeriod.Names)
        {
            var keys = KeysFor(tenantId, BudgetPeriod.For(name, now));
            await rdb.KeyDeleteAsync([keys.Marker, keys.Spent]);
        }
    }

    /// <summary>Runs one task per key on this replica at a time; concurrent callers await the same one.</summary>
    private async Task RunOnceAsync(string key, Func<Task> action)
    {
        var lazy = _rebuilds.GetOrAdd(key, _ => new Lazy<Task>(action));
        try
        {
            await lazy.Value;
        }
        finally
        {
            _rebuilds.TryRemove(new KeyValuePair<string, Lazy<Task>>(key, lazy));
        }
    }

    private async Task RebuildAsync(string tenantId, BudgetPeriod period, TenantKeys keys)
    {
        await ReregisterAsync(tenantId, period, keys);
        var epoch = Guid.NewGuid().ToString("N");
        var now = time.GetUtcNow();
        var rdb = redis.GetDatabase();
        var began = (int)await AdmissionScripts.BeginRebuild.EvaluateAsync(rdb, [keys.Marker, keys.Spent],
            [epoch, (long)_options.RebuildTimeout.TotalMilliseconds, period.KeyTtlMs(now)]);
        if (began == 0)
        {
            return; // Another replica got there first; the caller retries and waits for it.
        }
        // Rows settled before the marker was set are counted only in the ledger: make sure they are there. This replica's
        // are flushed; the other replicas' writers flush within their interval, which the grace covers.
        await ledger.FlushAsync(_options.RebuildTimeout / 2, CancellationToken.None);
        await Task.Delay(_options.RebuildGrace);
        await using var cmd = db.CreateCommand($"""
            SELECT coalesce(sum(l.cost_micro), 0)::bigint FROM usage_ledger l
            WHERE l.tenant_id = @tenant AND l.created_at >= @start {(period.Resets ? "AND l.created_at < @end" : "")}
              AND l.created_at >= coalesce((SELECT spend_reset_at FROM tenants WHERE id = @tenant), '-infinity')
              AND l.redis_epoch IS DISTINCT FROM @epoch
            """);
        cmd.Parameters.AddWithValue("tenant", tenantId);
        cmd.Parameters.AddWithValue("start", period.Start);
        if (period.Resets)
        {
            cmd.Parameters.AddWithValue("end", period.End);
        }
        cmd.Parameters.AddWithValue("epoch", epoch);
        var sum = (long)(await cmd.ExecuteScalarAsync())!;
        var finished = (int)await AdmissionScripts.FinishRebuild.EvaluateAsync(rdb, [keys.Marker, keys.Spent], [epoch, sum, period.KeyTtlMs(now)]);
        LogRebuilt(logger, tenantId, period.Id, sum, finished == 1);
    }

    private async Task ReregisterAsync(string tenantId, BudgetPeriod period, TenantKeys keys)
    {
        var args = new List<RedisValue> { (long)_options.ReservationTimeout.TotalMilliseconds * 2 };
        Task sent;
        lock (_sendOrder)
        {
            AddInFlightReservations(args, t => t.Caller.Tenant.Id == tenantId && t.Period.Id == period.Id);
            if (args.Count == 1)
            {
                return;
            }
            // By source: a NOSCRIPT answer and a second send would put it after settlements sent meanwhile.
            sent = AdmissionScripts.Reregister.EvaluateAsync(redis.GetDatabase(), [keys.Reserved, keys.Reservations], [.. args], bySource: true);
        }
        await sent;
        LogReregistered(logger, tenantId, (args.Count - 1) / 3);
    }

    /// <summary>Registers an admitted request as in flight (settlement, re-registration and lease retirement read the set).</summary>
    private void Track(AdmissionTicket ticket)
    {
        _inFlight[ticket.RequestId] = ticket;
        Interlocked.Increment(ref _inFlightCount);
    }

    /// <summary>
    /// Appends (member, µ$, expiry ms) of each budgeted request in flight that <paramref name="match"/> selects, as
    /// <see cref="AdmissionScripts.Reregister"/> and <see cref="AdmissionScripts.Retire"/> take them; returns how many.
    /// Called under <see cref="_sendOrder"/>, so none of them has a settlement sent before these.
    /// </summary>
    private int AddInFlightReservations(List<RedisValue> args, Func<AdmissionTicket, bool> match)
    {
        var count = 0;
        foreach (var (_, t) in _inFlight)
        {
            if (t.Budgeted && match(t))
            {
                args.Add(t.ReservationMember);
                args.Add(t.ReservedMicroUsd);
                args.Add(t.ReservationExpiryMs);
                count++;
            }
        }
        return count;
    }

    /// <summary>The Redis keys of a tenant's period, built once per replica and period rather than on every request.</summary>
    private TenantKeys KeysFor(string tenantId, BudgetPeriod period)
    {
        if (_keys.TryGetValue((tenantId, period.Id), out var keys))
        {
            return keys;
        }
        if (_keys.Count >= MaxCachedKeySets)
        {
            _keys.Clear(); // old periods and deleted tenants: rebuilt on demand, so a clear is only a little work
        }
        return _keys.GetOrAdd((tenantId, period.Id), static (k, prefix) => new TenantKeys(prefix, k.Tenant, k.Period), _options.RedisKeyPrefix);
    }

    /// <summary>One request's settlement waiting to be sent; <see cref="Epoch"/> completes with the script's answer.</summary>
    private sealed class PendingSettlement(string member, long costMicroUsd, long tokenDelta, long minute)
    {
        public string Member { get; } = member;
        public long CostMicroUsd { get; } = costMicroUsd;
        public long TokenDelta { get; } = tokenDelta;
        public long Minute { get; } = minute;
        public TaskCompletionSource<string?> Epoch { get; } = new();
    }

    private sealed class PendingBatch(string tenantId, string periodId, TenantKeys keys)
    {
        public string TenantId { get; } = tenantId;
        public string PeriodId { get; } = periodId;
        public TenantKeys Keys { get; } = keys;
        public List<PendingSettlement> Items { get; } = [];
    }

    private const int MaxCachedKeySets = 10_000;
    private readonly ConcurrentDictionary<(string Tenant, string Period), TenantKeys> _keys = new();

    /// <summary>The Redis keys of one tenant and period. The <c>{t:...}</c> hash tag keeps them in one cluster slot.</summary>
    private sealed class TenantKeys
    {
        private readonly string _base;
        private MinuteKeys? _minute;

        public TenantKeys(string prefix, string tenantId, string periodId)
        {
            _base = prefix + "{t:" + tenantId + "}:";
            Spent = _base + "spent:" + periodId;
            Marker = _base + "mark:" + periodId;
            Reserved = _base + "reserved:" + periodId;
            // Not "resv:" (a hash of amounts, with their expiries in "resvexp:", before the amount moved into the member):
            // a new name, so a replica of either kind never reads the other's layout while both run during a rollout.
            Reservations = _base + "reservations:" + periodId;
        }

        public RedisKey Spent { get; }
        public RedisKey Marker { get; }
        public RedisKey Reserved { get; }
        public RedisKey Reservations { get; }

        public RedisKey Rpm(long minute) => Window(minute).Rpm;
        public RedisKey Tpm(long minute) => Window(minute).Tpm;

        /// <summary>The rate-limit keys of one UTC minute; the current minute's are kept (a race only builds them twice).</summary>
        private MinuteKeys Window(long minute)
        {
            var current = _minute;
            if (current?.Minute == minute)
            {
                return current;
            }
            var m = minute.ToString(CultureInfo.InvariantCulture);
            var built = new MinuteKeys(minute, _base + "rpm:" + m, _base + "tpm:" + m);
            if (current is null || minute > current.Minute)
            {
                _minute = built;
            }
            return built;
        }

        private sealed record MinuteKeys(long Minute, RedisKey Rpm, RedisKey Tpm);
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Admission refused: Redis unavailable ({Reason})")]
    private static partial void LogRedisUnavailable(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Redis unavailable: request of tenant {Tenant} admitted on the local fail-open limit")]
    private static partial void LogAdmittedLocally(ILogger logger, string tenant);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Admission refused: ledger buffer full ({Slots} slots in use)")]
    private static partial void LogLedgerFull(ILogger logger, int slots);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Settlement of {Count} request(s) of tenant {Tenant} could not reach Redis; the reservations will expire and the ledger rows are kept: {Reason}")]
    private static partial void LogSettleFailed(ILogger logger, string tenant, int count, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Settlement for tenant {Tenant} failed; the reservation will expire and the ledger row is kept")]
    private static partial void LogSettleFaulted(ILogger logger, Exception exception, string tenant);

    [LoggerMessage(Level = LogLevel.Information, Message = "Spend of tenant {Tenant} for period {Period} rebuilt from the ledger: {SumMicroUsd} µ$ (completed: {Completed})")]
    private static partial void LogRebuilt(ILogger logger, string tenant, string period, long sumMicroUsd, bool completed);

    [LoggerMessage(Level = LogLevel.Information, Message = "Re-registered {Count} in-flight reservation(s) of tenant {Tenant}")]
    private static partial void LogReregistered(ILogger logger, string tenant, int count);
}
