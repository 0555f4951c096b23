using System.Collections.Concurrent;
using Microsoft.Extensions.Options;
using ModelGateway.Api.Configuration;

namespace ModelGateway.Api.Routing;

/// <summary>
/// A circuit breaker per target: after <see cref="RoutingOptions.CooldownAfterFailures"/> consecutive failures, or a
/// <c>retry-after</c>, the target is skipped until its cooldown ends; one success closes it again.
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
    }

    public bool IsCoolingDown(RouteTarget target) =>
        _states.TryGetValue(target.Key, out var s) && Volatile.Read(ref s.CooledUntilTicks) > time.GetUtcNow().UtcTicks;

    public void ReportSuccess(RouteTarget target)
    {
        if (_states.TryGetValue(target.Key, out var s))
        {
            Volatile.Write(ref s.ConsecutiveFailures, 0);
            Volatile.Write(ref s.CooledUntilTicks, 0);
        }
    }

    /// <summary>Counts a failure; returns true if the target is now cooling down.</summary>
    public bool ReportFailure(RouteTarget target, TimeSpan? retryAfter)
    {
        var s = _states.GetOrAdd(target.Key, static _ => new State());
        var failures = Interlocked.Increment(ref s.ConsecutiveFailures);
        var now = time.GetUtcNow().UtcTicks;
        var until = 0L;
        if (retryAfter is { } ra && ra > TimeSpan.Zero)
        {
            until = now + ra.Ticks;
        }
        if (failures >= _options.CooldownAfterFailures)
        {
            until = Math.Max(until, now + _options.Cooldown.Ticks);
        }
        if (until > Volatile.Read(ref s.CooledUntilTicks))
        {
            Volatile.Write(ref s.CooledUntilTicks, until);
        }
        return until > now;
    }
}
