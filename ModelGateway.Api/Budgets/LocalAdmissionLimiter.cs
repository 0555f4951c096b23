using System.Threading.RateLimiting;
using Microsoft.Extensions.Options;
using ModelGateway.Api.Tenancy;

namespace ModelGateway.Api.Budgets;

/// <summary>
/// The per-replica limit that replaces Redis admission while Redis is down and the deployment chose
/// <see cref="RedisOutageMode.FailOpen"/>: a fixed one-minute window per tenant, at the tenant's own requests-per-minute
/// limit or <see cref="BudgetOptions.FailOpenRequestsPerMinute"/>, whichever is lower. In memory by design: it exists for
/// when the shared store is gone.
/// </summary>
internal sealed class LocalAdmissionLimiter : IDisposable
{
    private readonly PartitionedRateLimiter<Tenant> _limiter;

    public LocalAdmissionLimiter(IOptions<BudgetOptions> options)
    {
        var ceiling = options.Value.FailOpenRequestsPerMinute;
        _limiter = PartitionedRateLimiter.Create<Tenant, string>(tenant => RateLimitPartition.GetFixedWindowLimiter(tenant.Id,
            _ => new FixedWindowRateLimiterOptions
            {
                PermitLimit = Math.Min(ceiling, tenant.RequestsPerMinute ?? int.MaxValue),
                Window = TimeSpan.FromMinutes(1),
                QueueLimit = 0,
                AutoReplenishment = true,
            }));
    }

    /// <summary>Takes a permit for the tenant; false when its local window is used up.</summary>
    public bool TryAcquire(Tenant tenant, out TimeSpan retryAfter)
    {
        using var lease = _limiter.AttemptAcquire(tenant);
        retryAfter = lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? wait : TimeSpan.FromSeconds(1);
        return lease.IsAcquired;
    }

    public void Dispose() => _limiter.Dispose();
}
