using System.Collections.Concurrent;
using Microsoft.Extensions.Options;
using ModelGateway.Api.Configuration;

namespace ModelGateway.Api.Routing;

/// <summary>
/// A circuit breaker per target: after <see cref="RoutingOptions.CooldownAfterFailures"/> consecutive failures, or a
/// <c>retry-after</c>, the target is skipped until its cooldown ends; one success closes it again. When a cooldown ends
/// the next request tries the target once more (half-open); if that fails too it is cooled down again at once, because
/// its failure count is still at the threshold.
/// Per replica on purpose: each replica sees its own connection failures, and sharing would cost a round trip per request.
/// </summary>
internal sealed class TargetHealth(IOptions<GatewayOptions> options, TimeProvider time)
{
    private readonly ConcurrentDictionary<string, State> _states = new(StringComparer.Ordinal);
    private readonly RoutingOptions _options = options.Value.Routing;

    private sealed class State
    {
        public int ConsecutiveFailures;
        public long CooledUntilTicks;

        /// <summary>1 when the current cooldown is the provider's rate limit (a 429's retry-after), not repeated failures.</summary>
        public int RateLimited;
    }

    /// <summary>Why and for how much longer a target is skipped.</summary>
    public readonly record struct Cooling(TimeSpan Remaining, bool RateLimited);

    public bool IsCoolingDown(RouteTarget target) => TryGetCooling(target, out _);

    public bool TryGetCooling(RouteTarget target, out Cooling cooling)
    {
        cooling = default;
        if (!_states.TryGetValue(target.Key, out var s))
        {
            return false;
        }
        var remaining = Volatile.Read(ref s.CooledUntilTicks) - time.GetUtcNow().UtcTicks;
        if (remaining <= 0)
        {
            return false;
        }
        cooling = new Cooling(TimeSpan.FromTicks(remaining), Volatile.Read(ref s.RateLimited) != 0);
        return true;
    }

    public void ReportSuccess(RouteTarget target)
    {
        if (_states.TryGetValue(target.Key, out var s))
        {
            Volatile.Write(ref s.ConsecutiveFailures, 0);
            Volatile.Write(ref s.CooledUntilTicks, 0);
            Volatile.Write(ref s.RateLimited, 0);
        }
    }

    /// <summary>
    /// Counts a failure, cooling the target for the provider's <paramref name="retryAfter"/> and, at the threshold, for
    /// <see cref="RoutingOptions.Cooldown"/>. Returns true when the breaker is open (the threshold has been reached), so
    /// the target must not be retried within this request even once its retry-after has passed.
    /// </summary>
    public bool ReportFailure(RouteTarget target, TimeSpan? retryAfter, bool rateLimited = false)
    {
        var s = _states.GetOrAdd(target.Key, static _ => new State());
        var failures = Interlocked.Increment(ref s.ConsecutiveFailures);
        var now = time.GetUtcNow().UtcTicks;
        var until = 0L;
        var byRetryAfter = false;
        if (retryAfter is { } ra && ra > TimeSpan.Zero)
        {
            until = now + ra.Ticks;
            byRetryAfter = rateLimited;
        }
        var open = failures >= _options.CooldownAfterFailures;
        if (open && now + _options.Cooldown.Ticks > until)
        {
            until = now + _options.Cooldown.Ticks;
            byRetryAfter = false;
        }
        // Concurrent reports may interleave; the later deadline wins, which is the safe side.
        if (until > Volatile.Read(ref s.CooledUntilTicks))
        {
            Volatile.Write(ref s.RateLimited, byRetryAfter ? 1 : 0);
            Volatile.Write(ref s.CooledUntilTicks, until);
        }
        return open;
    }
}
