using System.Diagnostics;
using Microsoft.Extensions.Logging;
using ModelGateway.Policy.Rules.BuiltIn;

namespace ModelGateway.Policy.Rules.Decisions;

/// <summary>
/// The <see cref="IPolicyEngine"/> callers use: picks the tenant's engine, never lets a failure allow by
/// accident, and records every decision (log line, metric, span).
/// </summary>
/// <remarks>
/// 1. Tenants on <see cref="PolicyEngineKind.BuiltIn"/> (or on OPA when no remote engine is configured) are
///    decided in process by <see cref="BuiltInPolicyEngine"/>.
/// 2. Tenants on <see cref="PolicyEngineKind.Opa"/> ask the <see cref="IRemotePolicyEngine"/> (in the Api:
///    the Policy service; in the Policy service: OPA).
/// 3. A remote failure (error, timeout, undefined result) denies, unless the tenant set
///    <see cref="TenantPolicy.FailOpen"/>; either way it is logged at Warning.
/// 4. The caller's own cancellation is not a failure: it propagates.
/// </remarks>
public sealed partial class PolicyDecider(
    BuiltInPolicyEngine builtIn,
    PolicyTelemetry telemetry,
    ILogger<PolicyDecider> logger,
    TimeProvider timeProvider,
    IRemotePolicyEngine? remote = null) : IPolicyEngine
{
    public async ValueTask<PolicyDecision> DecideAsync(PolicyInput input, TenantPolicy policy, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(policy);

        var useRemote = policy.Engine == PolicyEngineKind.Opa && remote is { IsConfigured: true };
        using var activity = PolicyTelemetry.ActivitySource.StartActivity("policy.decide");
        activity?.SetTag("gateway.tenant", input.Tenant);
        var started = timeProvider.GetTimestamp();

        PolicyDecision decision;
        if (!useRemote)
        {
            decision = builtIn.Decide(input, policy);
        }
        else
        {
            try
            {
                decision = await remote!.DecideAsync(input, policy, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested)
            {
                decision = Failed(remote!.Name, input, policy, e);
            }
        }

        var elapsed = timeProvider.GetElapsedTime(started);
        Record(decision, input, elapsed, activity);
        return decision;
    }

    private PolicyDecision Failed(string engine, PolicyInput input, TenantPolicy policy, Exception error)
    {
        var detail = error is PolicyEngineException ? error.Message : $"{engine} call failed: {error.GetType().Name}: {error.Message}";
        telemetry.EngineFailed(engine, policy.FailOpen);
        if (policy.FailOpen)
        {
            LogFailOpen(logger, engine, input.Tenant, detail, error);
        }
        else
        {
            LogFailClosed(logger, engine, input.Tenant, detail, error);
        }

        return new PolicyDecision
        {
            Allow = policy.FailOpen,
            Reasons = [$"policy engine unavailable: {detail}"],
            DecisionId = PolicyDecision.NewDecisionId(),
            Engine = engine,
            FailOpen = policy.FailOpen,
        };
    }

    private void Record(PolicyDecision decision, PolicyInput input, TimeSpan elapsed, Activity? activity)
    {
        telemetry.Decided(decision, elapsed);
        if (activity is not null)
        {
            activity.SetTag("policy.decision_id", decision.DecisionId);
            activity.SetTag("policy.engine", decision.Engine);
            activity.SetTag("policy.allow", decision.Allow);
            if (!decision.Allow)
            {
                activity.SetTag("policy.reasons", string.Join("; ", decision.Reasons));
                activity.SetStatus(ActivityStatusCode.Error, "policy denied");
            }
        }

        // The digest costs a serialisation and a hash: only pay for it when the line is written.
        if (logger.IsEnabled(LogLevel.Information))
        {
            var digest = PolicyDigest.Of(input);
            if (decision.Allow)
            {
                LogAllowed(logger, decision.DecisionId, input.Tenant, decision.Engine, elapsed.TotalMilliseconds, digest);
            }
            else
            {
                LogDenied(logger, decision.DecisionId, input.Tenant, decision.Engine, elapsed.TotalMilliseconds, digest, decision.Reasons);
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Policy decision {DecisionId}: allow for tenant {Tenant} by {Engine} in {LatencyMs:F3} ms (input sha256 {InputDigest})")]
    private static partial void LogAllowed(ILogger logger, string decisionId, string tenant, string engine, double latencyMs, string inputDigest);

    [LoggerMessage(Level = LogLevel.Information, Message = "Policy decision {DecisionId}: deny for tenant {Tenant} by {Engine} in {LatencyMs:F3} ms (input sha256 {InputDigest}): {Reasons}")]
    private static partial void LogDenied(ILogger logger, string decisionId, string tenant, string engine, double latencyMs, string inputDigest, IReadOnlyList<string> reasons);

    [LoggerMessage(Level = LogLevel.Warning, Message = "FAIL-OPEN: policy engine {Engine} failed for tenant {Tenant} and the tenant's fail-open setting ALLOWED the request unchecked: {Detail}")]
    private static partial void LogFailOpen(ILogger logger, string engine, string tenant, string detail, Exception error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Policy engine {Engine} failed for tenant {Tenant}; the request is denied (fail-closed): {Detail}")]
    private static partial void LogFailClosed(ILogger logger, string engine, string tenant, string detail, Exception error);
}
