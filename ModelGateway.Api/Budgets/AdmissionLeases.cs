using System.Collections.Concurrent;
using System.Diagnostics;
using ModelGateway.Api.Tenancy;
using StackExchange.Redis;

namespace ModelGateway.Api.Budgets;

/// <summary>
/// A block of one tenant's minute and budget headroom that Redis granted this replica (<see cref="BudgetOptions.LeaseLifetime"/>):
/// requests are admitted from it in memory until it runs short, its minute ends or its lifetime passes; then it is retired
/// (<see cref="AdmissionScripts.Retire"/>). Its counters change only under its slot's lock.
/// </summary>
internal sealed class AdmissionLease
{
    public required string TenantId { get; init; }
    public required BudgetPeriod Period { get; init; }

    /// <summary>The lease's member in the reservation set: <c>{lease id}:{µ$}</c>.</summary>
    public required string Member { get; init; }
    public required long Minute { get; init; }

    /// <summary>The period's epoch when granted (null for a budgetless tenant): a reply that shows another ends the lease.</summary>
    public required string? Epoch { get; init; }
    public required long DueTimestamp { get; init; }
    public required int Requests { get; init; }
    public required long Tokens { get; init; }
    public required long MicroUsd { get; init; }
    public required bool CountsRequests { get; init; }
    public required bool CountsTokens { get; init; }
    public required bool Budgeted { get; init; }

    /// <summary>The limits as the grant left them (the whole lease counted as used), for the headers of leased requests.</summary>
    public required RateLimitState Limits { get; init; }

    public int RequestsUsed { get; private set; }
    public long TokensUsed { get; private set; }
    public long MicroUsdUsed { get; private set; }
    public bool Retired { get; set; }

    /// <summary>Takes one request's worst case, if the lease holds it.</summary>
    public bool TryTake(int tokens, long microUsd)
    {
        if (RequestsUsed >= Requests || (CountsTokens && TokensUsed + tokens > Tokens) || (Budgeted && MicroUsdUsed + microUsd > MicroUsd))
        {
            return false;
        }
        RequestsUsed++;
        TokensUsed += tokens;
        MicroUsdUsed += microUsd;
        return true;
    }

    /// <summary>Half used in any limit, or half its life gone: time to ask for the next one.</summary>
    public bool RunningLow(long now, long lifeTicks) =>
        RequestsUsed * 2 >= Requests || (CountsTokens && Tokens > 0 && TokensUsed * 2 >= Tokens)
        || (Budgeted && MicroUsd > 0 && MicroUsdUsed * 2 >= MicroUsd)
        || now >= DueTimestamp - lifeTicks / 2;
}

/// <summary>This replica's lease of one tenant's period, and how many requests it admitted lately.</summary>
internal sealed class LeaseSlot
{
    public Lock Gate { get; } = new();
    public AdmissionLease? Current { get; set; }

    private TaskCompletionSource? _grant;

    /// <summary>A grant is on its way: no other request asks for one meanwhile. Under <see cref="Gate"/>.</summary>
    public bool Granting => _grant is not null;

    /// <summary>Completes when the grant on its way has its reply or has failed (null: none on its way). Under <see cref="Gate"/>.</summary>
    public Task? GrantInFlight => _grant?.Task;

    /// <summary>Marks a grant on its way. Under <see cref="Gate"/>.</summary>
    public void BeginGrant() => _grant = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>
    /// Ends the grant on its way and wakes the requests that wait for it. Under <see cref="Gate"/>; the waiters resume on the
    /// thread pool, never under the lock.
    /// </summary>
    public void EndGrant()
    {
        _grant?.TrySetResult();
        _grant = null;
    }
    private long _windowStart;
    private int _thisWindow;
    private int _lastWindow;

    /// <summary>
    /// Counts an admission (unless <paramref name="count"/> is false: a request counted once tries again); returns the
    /// admissions in this lifetime-long window or the recent ones', whichever is more. The recent windows' figure is a peak
    /// that halves with each window that passes (a window of steady traffic keeps it at that traffic), so a tenant whose
    /// requests come in bursts a little apart (a batch job's N at a time) still gets a lease at the start of its next
    /// burst, and one that stopped no longer does within a few lifetimes. Under <see cref="Gate"/>.
    /// </summary>
    public int CountDemand(long now, long lifeTicks, bool count = true)
    {
        if (now - _windowStart >= lifeTicks)
        {
            var idleWindows = (int)Math.Min((now - _windowStart) / lifeTicks - 1, 31);
            _lastWindow = Math.Max(_thisWindow, _lastWindow >> 1) >> idleWindows;
            _thisWindow = 0;
            _windowStart = now;
        }
        if (count)
        {
            _thisWindow++;
        }
        return Math.Max(_thisWindow, _lastWindow);
    }
}

/// <summary>Admission leases: the part of admission that takes Redis off the path of a tenant's steady traffic.</summary>
internal sealed partial class AdmissionService : IAsyncDisposable, IDisposable
{
    /// <summary>Admissions of one tenant on one replica within a lease lifetime before the replica asks for leases.</summary>
    public const int MinLeaseDemand = 8;

    /// <summary>The most requests one lease holds.</summary>
    private const int MaxLeaseRequests = 4096;

    /// <summary>
    /// How many grants one request waits for before it asks Redis itself: a burst that outruns the first grant (its size
    /// comes from the demand before the burst) waits for the refill the burst's own demand sized.
    /// </summary>
    private const int MaxGrantWaits = 2;

    /// <summary>
    /// The longest a request waits for a grant on its way (one Redis round trip, normally well under a millisecond); past it
    /// the request asks Redis itself, as it would with no grant on its way.
    /// </summary>
    private static readonly TimeSpan GrantWaitLimit = TimeSpan.FromSeconds(1);

    private readonly ConcurrentDictionary<(string Tenant, string Period), LeaseSlot> _slots = new();

    private LeaseSlot SlotFor(string tenantId, BudgetPeriod period)
    {
        if (_slots.TryGetValue((tenantId, period.Id), out var slot))
        {
            return slot;
        }
        if (_slots.Count >= MaxCachedKeySets)
        {
            foreach (var (key, idle) in _slots)
            {
                if (idle.Current is null && !idle.Granting)
                {
                    _slots.TryRemove(key, out _);
                }
            }
        }
        return _slots.GetOrAdd((tenantId, period.Id), static _ => new LeaseSlot());
    }

    /// <summary>
    /// Admits <paramref name="ticket"/> from the slot's lease if it holds the request's worst case. Otherwise retires a lease
    /// that is spent, stale or too small, and sets <paramref name="leaseWanted"/> to how many requests a lease asked for with
    /// this request's Redis admission should hold (0: none, the replica's demand is low or a grant is already on its way),
    /// and <paramref name="grantInFlight"/> to the grant already on its way, if any: the request may wait for it rather than
    /// ask Redis itself. <paramref name="countDemand"/> is false when a request that waited for a grant tries again.
    /// The ticket is registered in flight under the slot's lock, so a retirement, which marks the lease under that lock
    /// before it collects the lease's requests in flight, sees every request admitted from it.
    /// </summary>
    private bool TryAdmitFromLease(LeaseSlot slot, AdmissionTicket ticket, long minute, int worstTokens, long worstCost, bool countDemand,
        out int leaseWanted, out Task? grantInFlight)
    {
        leaseWanted = 0;
        grantInFlight = null;
        var now = Stopwatch.GetTimestamp();
        AdmissionLease? retire = null;
        var taken = false;
        var refill = 0;
        lock (slot.Gate)
        {
            var demand = slot.CountDemand(now, _leaseLifeTicks, countDemand);
            if (slot.Current is { } lease)
            {
                // Not once the connection is known lost: Redis may have lost the lease too (and FailClosed admits nothing
                // Redis did not grant while it is unreachable).
                if (lease.Minute == minute && now < lease.DueTimestamp && redis.IsConnected && lease.TryTake(worstTokens, worstCost))
                {
                    ticket.Lease = lease;
                    Track(ticket);
                    taken = true;
                    if (!slot.Granting && lease.RunningLow(now, _leaseLifeTicks))
                    {
                        slot.BeginGrant();
                        refill = LeaseSize(demand);
                    }
                }
                else
                {
                    retire = lease;
                    lease.Retired = true;
                    slot.Current = null;
                }
            }
            if (!taken && !slot.Granting && demand >= MinLeaseDemand)
            {
                slot.BeginGrant();
                leaseWanted = LeaseSize(demand);
            }
            else if (!taken)
            {
                grantInFlight = slot.GrantInFlight;
            }
        }
        if (retire is not null)
        {
            _ = RetireLeaseAsync(retire);
        }
        if (refill > 0)
        {
            _ = RefillLeaseAsync(slot, ticket.Caller.Tenant, ticket.Period, worstTokens, worstCost, refill);
        }
        return taken;
    }

    /// <summary>Twice the requests of the last lifetime: a lease lasts about its life, and is renewed at half.</summary>
    private static int LeaseSize(int demand) => Math.Clamp(demand * 2, MinLeaseDemand, MaxLeaseRequests);

    /// <summary>The admission script's arguments: the request's (an empty member for a lease alone) and the lease's.</summary>
    private RedisValue[] AdmitArgs(Tenant tenant, long worstCost, int worstTokens, string member, long nowMs, long expiryMs,
        int leaseRequests, string leaseId) =>
        [tenant.RequestsPerMinute ?? 0, tenant.TokensPerMinute ?? 0, tenant.BudgetMicroUsd ?? -1, worstCost, worstTokens, member,
            nowMs, expiryMs, 120_000, (long)_options.ReservationTimeout.TotalMilliseconds * 2,
            leaseRequests, (long)leaseRequests * worstTokens, (long)leaseRequests * worstCost, leaseId,
            nowMs + (long)_options.ReservationTimeout.TotalMilliseconds + (long)(_leaseLifeTicks * 1000 / Stopwatch.Frequency)];

    /// <summary>
    /// What an admission reply means for the slot's lease: a grant becomes the current lease (the one before it retires), a
    /// period Redis no longer tracks or tracks under another epoch retires it. Ends the slot's grant if this reply was it.
    /// </summary>
    private void OnAdmitReply(LeaseSlot slot, Tenant tenant, BudgetPeriod period, long minute, RedisResult[] r, string leaseId,
        bool granting, RateLimitState limits)
    {
        var status = (int)r[0];
        var epoch = (string?)r[5] is { Length: > 0 } e ? e : null;
        var granted = status == 0 && granting ? (int)r[7] : 0;
        AdmissionLease? fresh = null;
        if (granted > 0)
        {
            var microUsd = (long)r[9];
            fresh = new AdmissionLease
            {
                TenantId = tenant.Id,
                Period = period,
                Member = leaseId + ":" + microUsd.ToString(System.Globalization.CultureInfo.InvariantCulture),
                Minute = minute,
                Epoch = epoch,
                DueTimestamp = Stopwatch.GetTimestamp() + _leaseLifeTicks,
                Requests = granted,
                Tokens = (long)r[8],
                MicroUsd = microUsd,
                CountsRequests = tenant.RequestsPerMinute is not null,
                CountsTokens = tenant.TokensPerMinute is not null,
                Budgeted = tenant.BudgetMicroUsd is not null,
                Limits = limits,
            };
        }
        AdmissionLease? retire = null;
        lock (slot.Gate)
        {
            if (granting)
            {
                slot.EndGrant();
            }
            var current = slot.Current;
            if (current is not null && (fresh is not null || status < 0 || (current.Budgeted && epoch != current.Epoch)))
            {
                retire = current;
                current.Retired = true;
                slot.Current = null;
            }
            if (fresh is not null)
            {
                slot.Current = fresh;
            }
        }
        if (retire is not null)
        {
            _ = RetireLeaseAsync(retire);
        }
        if (fresh is not null)
        {
            _ = RetireWhenDueAsync(slot, fresh);
        }
    }

    /// <summary>Ends a grant that got no reply (Redis unreachable), so a later request may ask again.</summary>
    private static void EndGrant(LeaseSlot slot)
    {
        lock (slot.Gate)
        {
            slot.EndGrant();
        }
    }

    /// <summary>
    /// For an exception filter: ends the grant asked for with an admission that failed (requests wait for a grant on its
    /// way, so none may stay open), whatever the exception; always true.
    /// </summary>
    private static bool FaultEndsGrant(LeaseSlot? slot, int leaseWanted)
    {
        if (slot is not null && leaseWanted > 0)
        {
            EndGrant(slot);
        }
        return true;
    }

    /// <summary>Waits for the grant on its way; false if it took longer than <see cref="GrantWaitLimit"/>.</summary>
    private static async Task<bool> WaitForGrantAsync(Task grant, CancellationToken cancellationToken)
    {
        try
        {
            await grant.WaitAsync(GrantWaitLimit, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    /// <summary>Asks for the next lease while the current one still admits, so the steady state never waits for Redis.</summary>
    private async Task RefillLeaseAsync(LeaseSlot slot, Tenant tenant, BudgetPeriod period, int worstTokens, long worstCost, int size)
    {
        var replied = false;
        try
        {
            var now = time.GetUtcNow();
            var nowMs = now.ToUnixTimeMilliseconds();
            var minute = nowMs / 60_000;
            var leaseId = Guid.NewGuid().ToString("N");
            var r = (RedisResult[])(await SendAdmission(tenant.Id, period, KeysFor(tenant.Id, period), minute,
                AdmitArgs(tenant, worstCost, worstTokens, "", nowMs, 0, size, leaseId)))!;
            var resetIn = TimeSpan.FromMilliseconds((minute + 1) * 60_000 - nowMs);
            var limits = new RateLimitState(tenant.RequestsPerMinute, (long)r[1], tenant.TokensPerMinute, (long)r[2], resetIn);
            replied = true;
            OnAdmitReply(slot, tenant, period, minute, r, leaseId, granting: true, limits);
        }
        catch (Exception ex)
        {
            LogLeaseRefillFailed(logger, tenant.Id, ex.Message);
            CheckLeaseEpoch(tenant.Id, period.Id, null, failed: true);
        }
        finally
        {
            if (!replied)
            {
                EndGrant(slot);
            }
        }
    }

    /// <summary>Retires a lease when its life ends, if nothing retired it before (a tenant whose traffic stopped).</summary>
    private async Task RetireWhenDueAsync(LeaseSlot slot, AdmissionLease lease)
    {
        // Real time, as the lease's life is measured: it bounds how long a replica goes without meeting Redis.
        await Task.Delay(TimeSpan.FromTicks(_leaseLifeTicks * TimeSpan.TicksPerSecond / Stopwatch.Frequency)).ConfigureAwait(false);
        lock (slot.Gate)
        {
            if (lease.Retired)
            {
                return;
            }
            lease.Retired = true;
            if (slot.Current == lease)
            {
                slot.Current = null;
            }
        }
        await RetireLeaseAsync(lease);
    }

    /// <summary>
    /// Retires a lease marked retired: its requests still in flight become reservations of their own, its reservation is
    /// released and what it did not use goes back. Settlements this replica has not sent yet go first, under
    /// <see cref="_sendOrder"/>: a request that settled before the retirement is counted in spent before the lease's
    /// reservation stops holding its worst case. Sent by source, so a NOSCRIPT never puts it after a settlement sent
    /// meanwhile (a settlement of a request it converts must find the request's reservation there).
    /// </summary>
    private async Task RetireLeaseAsync(AdmissionLease lease)
    {
        Task sent;
        int inFlight;
        lock (_sendOrder)
        {
            FlushPending(lease.TenantId);
            var ttl = (long)_options.ReservationTimeout.TotalMilliseconds * 2;
            var args = new List<RedisValue>
            {
                lease.Member, lease.CountsRequests ? lease.Requests - lease.RequestsUsed : 0,
                lease.CountsTokens ? lease.Tokens - lease.TokensUsed : 0, ttl,
            };
            inFlight = AddInFlightReservations(args, t => t.Lease == lease);
            var keys = KeysFor(lease.TenantId, lease.Period);
            sent = AdmissionScripts.Retire.EvaluateAsync(redis.GetDatabase(),
                [keys.Rpm(lease.Minute), keys.Tpm(lease.Minute), keys.Reserved, keys.Reservations], [.. args], bySource: true);
        }
        try
        {
            await sent;
        }
        catch (Exception ex)
        {
            // Its reservation then holds the budget until it expires (after the reservation timeout), and so covers the
            // requests it admitted: early refusals, never an overshoot.
            LogLeaseRetireFailed(logger, lease.TenantId, inFlight, ex.Message);
        }
    }

    /// <summary>
    /// A settlement's reply showed the period's epoch (<paramref name="failed"/>: it got none, Redis was unreachable): a lease
    /// granted under another epoch, or by a Redis this replica cannot reach, is retired.
    /// </summary>
    private void CheckLeaseEpoch(string tenantId, string periodId, string? epoch, bool failed = false)
    {
        if (!_slots.TryGetValue((tenantId, periodId), out var slot))
        {
            return;
        }
        AdmissionLease? stale = null;
        lock (slot.Gate)
        {
            if (slot.Current is { } lease && (failed || (lease.Budgeted && lease.Epoch != epoch)))
            {
                stale = lease;
                lease.Retired = true;
                slot.Current = null;
            }
        }
        if (stale is not null)
        {
            _ = RetireLeaseAsync(stale);
        }
    }

    /// <summary>
    /// Retires every lease this replica holds (at shutdown, and for tests), and waits for Redis to take them back. Grants on
    /// their way (a refill asked in the background) are waited for first: one replied after this would leave a lease, and
    /// its reservation, behind.
    /// </summary>
    internal async Task RetireLeasesAsync()
    {
        var granting = new List<Task>();
        foreach (var (_, slot) in _slots)
        {
            lock (slot.Gate)
            {
                if (slot.GrantInFlight is { } grant)
                {
                    granting.Add(grant);
                }
            }
        }
        await Task.WhenAll(granting);
        var retiring = new List<Task>();
        foreach (var (_, slot) in _slots)
        {
            AdmissionLease? lease;
            lock (slot.Gate)
            {
                lease = slot.Current;
                if (lease is null)
                {
                    continue;
                }
                lease.Retired = true;
                slot.Current = null;
            }
            retiring.Add(RetireLeaseAsync(lease));
        }
        await Task.WhenAll(retiring);
    }

    /// <summary>A replica that stops gives its leases back rather than leaving them to hold budget until they expire.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            await RetireLeasesAsync().WaitAsync(TimeSpan.FromSeconds(5));
        }
        catch (Exception ex) when (ex is TimeoutException or ObjectDisposedException or RedisException)
        {
            LogLeaseRetireFailed(logger, "*", 0, ex.Message);
        }
    }

    /// <summary>As <see cref="DisposeAsync"/>, for a container disposed synchronously.</summary>
    public void Dispose()
    {
        try
        {
            RetireLeasesAsync().Wait(TimeSpan.FromSeconds(5));
        }
        catch (Exception ex) when (ex is AggregateException or ObjectDisposedException)
        {
            LogLeaseRetireFailed(logger, "*", 0, ex.Message);
        }
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Lease refill for tenant {Tenant} failed: {Reason}")]
    private static partial void LogLeaseRefillFailed(ILogger logger, string tenant, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Lease of tenant {Tenant} could not be retired ({InFlight} request(s) in flight); its reservation holds until it expires: {Reason}")]
    private static partial void LogLeaseRetireFailed(ILogger logger, string tenant, int inFlight, string reason);
}
