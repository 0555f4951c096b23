using System.Threading.RateLimiting;
using Microsoft.Extensions.Options;
using ModelGateway.Api.Budgets;

namespace ModelGateway.Api.Tenancy;

/// <summary>
/// Limits requests that do not carry a key this replica already knows, per client IP (600/min by default, as the original
/// gateway): an unauthenticated flood, or a flood of random keys that would each cost a Postgres lookup. Callers with a
/// cached valid key are limited by their tenant's shared limits instead. This limit is per replica by nature (it guards
/// this replica's resources), so System.Threading.RateLimiting in memory is the right tool; N replicas admit N × the limit.
/// </summary>
internal sealed class FloodGuard : IDisposable
{
    private readonly PartitionedRateLimiter<string> _limiter;

    public FloodGuard(IOptions<FloodGuardOptions> options)
    {
        var permits = options.Value.PermitsPerMinute;
        _limiter = PartitionedRateLimiter.Create<string, string>(ip => RateLimitPartition.GetFixedWindowLimiter(ip,
            _ => new FixedWindowRateLimiterOptions { PermitLimit = permits, Window = TimeSpan.FromMinutes(1), QueueLimit = 0, AutoReplenishment = true }));
    }

    /// <summary>Takes a permit for the request's client IP; false when its window is used up.</summary>
    public bool TryAcquire(HttpContext context)
    {
        var ip = context.Connection.RemoteIpAddress?.ToString() ?? "unknown";
        using var lease = _limiter.AttemptAcquire(ip);
        return lease.IsAcquired;
    }

    public void Dispose() => _limiter.Dispose();
}
