using System.ComponentModel.DataAnnotations;

namespace ModelGateway.Api.Tenancy;

/// <summary>Section <c>Tenancy</c>: the admin key and tenants seeded from configuration.</summary>
public sealed class TenancyOptions
{
    public const string SectionName = "Tenancy";

    /// <summary>The admin key for <c>/api/admin</c> and the read endpoints. Required; there is no default outside Development.</summary>
    [Required(ErrorMessage = "Tenancy:AdminKey is required (set Tenancy__AdminKey or the AppHost parameter admin-key).")]
    [MinLength(12, ErrorMessage = "Tenancy:AdminKey must be at least 12 characters.")]
    public string AdminKey { get; set; } = "";

    /// <summary>How long a key lookup is cached in memory (default 5 s): revocation takes effect within this time on every replica.</summary>
    public TimeSpan KeyCacheTtl { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// While Postgres is unreachable, how long past its TTL a key this replica verified keeps working (default 15 min;
    /// zero turns it off). Keys not seen before the outage are refused, and a revocation clears the cache as usual.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "1.00:00:00")]
    public TimeSpan KeyCacheStaleIfError { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>
    /// How long a key lookup may wait for Postgres (default 2 s) before it counts as Postgres being unavailable: a key this
    /// replica verified is then served from the cache as stale-if-error says. Without a bound, a Postgres that hangs (alive
    /// but not answering: a lock, a stalled disk, a paused VM) held every request of a key whose entry had just expired for
    /// up to a minute (Npgsql's command timeout, then its cancellation, which waits on the server too), once per TTL.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "00:01:00")]
    public TimeSpan KeyLookupTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Tenants created or updated at start-up (the original gateway's policy block maps onto this).</summary>
    public List<SeedTenant> Seed { get; set; } = [];
}

public sealed class SeedTenant
{
    [Required]
    public string Id { get; set; } = "";

    public string? Name { get; set; }

    /// <summary>Model aliases the tenant may use; empty means all.</summary>
    public List<string> AllowedModels { get; set; } = [];

    public int? MaxOutputTokens { get; set; }

    public decimal? MaxUsdPerRequest { get; set; }

    public decimal? BudgetUsd { get; set; }

    /// <summary><c>daily</c>, <c>monthly</c> or <c>total</c>.</summary>
    public string BudgetPeriod { get; set; } = "total";

    public int? RequestsPerMinute { get; set; }

    public int? TokensPerMinute { get; set; }

    /// <summary>Policy rules beyond the limits above (model/provider lists, time windows, deny patterns, OPA); see docs/policy.md.</summary>
    public ModelGateway.Policy.Rules.TenantPolicy? Policy { get; set; }

    /// <summary>Plain API keys to register for this tenant (stored hashed). For development and tests; in production issue keys through the admin API.</summary>
    public List<string> ApiKeys { get; set; } = [];
}
