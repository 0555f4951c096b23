using System.ComponentModel.DataAnnotations;

namespace ModelGateway.Api.Budgets;

/// <summary>Section <c>Budgets</c>: how admission reserves and settles money and tokens in Redis.</summary>
public sealed class BudgetOptions
{
    public const string SectionName = "Budgets";

    /// <summary>Prefix of every Redis key the gateway writes (default <c>mg:</c>), so several deployments can share a Redis.</summary>
    [Required]
    public string RedisKeyPrefix { get; set; } = "mg:";

    /// <summary>
    /// How long a reservation lives if its request never settles (a replica that crashed mid-request; default 15 min).
    /// Longer than any request may run, or a slow stream's reservation would be released while it still spends.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:10", "1.00:00:00")]
    public TimeSpan ReservationTimeout { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>
    /// How long a spend rebuild waits after flushing this replica's ledger rows before it sums the ledger (default 1 s):
    /// long enough for the other replicas' writers to flush what they settled before Redis lost its data.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:01:00")]
    public TimeSpan RebuildGrace { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// How long a finished request's settlement may wait to be carried by the next admission of the same tenant, when other
    /// requests are in flight on the replica (default 2 ms; 0 sends each at once; an idle replica always does). Either way it
    /// is sent before any later admission of that tenant from this replica; other replicas see it up to this much later, and
    /// the reservation holds the worst case meanwhile: the wait can refuse early, not admit more. Under load nearly every
    /// settlement rides an admission: one Redis script per request instead of two (docs/benchmark.md, session 11).
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:00:10")]
    public TimeSpan SettlementWindow { get; set; } = TimeSpan.FromMilliseconds(2);

    /// <summary>
    /// How long an admission lease lives (default 250 ms; 0 turns leases off). A replica admitting a tenant's requests at a
    /// steady rate (at least <see cref="AdmissionService.MinLeaseDemand"/> per lifetime) asks Redis, along with an admission,
    /// for a block of the tenant's current minute and budget headroom, at most an eighth of what is left, and admits the
    /// next requests from it in memory: no Redis round trip before the provider call. The block is reserved in Redis like a
    /// request, so limits stay exact across replicas (a lease can refuse early elsewhere, never admit more); what it did not
    /// use goes back when it ends. Capped at half of <see cref="RebuildGrace"/>, so a replica meets Redis during any rebuild
    /// and re-registers what it has in flight (docs/architecture.md, admission).
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:00:05")]
    public TimeSpan LeaseLifetime { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>How long a replica waits for another one's rebuild before it refuses with 503 (default 10 s).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:05:00")]
    public TimeSpan RebuildTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// What admission does when Redis cannot be reached (default <see cref="RedisOutageMode.FailClosed"/>: 503
    /// <c>admission_unavailable</c>, nothing served that could break a limit or a budget).
    /// </summary>
    public RedisOutageMode WhenRedisUnavailable { get; set; } = RedisOutageMode.FailClosed;

    /// <summary>
    /// With <see cref="RedisOutageMode.FailOpen"/>: requests per minute each replica admits per tenant while Redis is down
    /// (default 60; the tenant's own requests-per-minute limit when that is lower). Local to the replica: N replicas admit
    /// up to N times this, and budgets are checked again only once Redis is back (the rebuild from the ledger counts what
    /// was spent meanwhile).
    /// </summary>
    [Range(1, 1_000_000)]
    public int FailOpenRequestsPerMinute { get; set; } = 60;
}

/// <summary>Admission's behaviour while Redis is unreachable.</summary>
public enum RedisOutageMode
{
    /// <summary>Refuse with 503 until Redis answers again.</summary>
    FailClosed,

    /// <summary>Admit under a per-replica, per-tenant local limit; shared limits and budgets resume when Redis returns.</summary>
    FailOpen,
}

/// <summary>Section <c>FloodGuard</c>: the per-client-IP limit on requests without a known key.</summary>
public sealed class FloodGuardOptions
{
    public const string SectionName = "FloodGuard";

    /// <summary>Unauthenticated requests (or first lookups of a key) per client IP per minute (default 600, as the original gateway).</summary>
    [Range(1, 1_000_000)]
    public int PermitsPerMinute { get; set; } = 600;
}
