namespace ModelGateway.Policy.Rules;

/// <summary>Decides whether one request may proceed under its tenant's policy.</summary>
public interface IPolicyEngine
{
    ValueTask<PolicyDecision> DecideAsync(PolicyInput input, TenantPolicy policy, CancellationToken cancellationToken);
}

/// <summary>
/// An engine outside this process (OPA, or the Policy service seen from the Api) that
/// <see cref="Decisions.PolicyDecider"/> uses for tenants whose <see cref="TenantPolicy.Engine"/> is
/// <see cref="PolicyEngineKind.Opa"/>. It may throw; the decider turns any failure into a fail-closed (or,
/// if the tenant chose it, fail-open) decision.
/// </summary>
public interface IRemotePolicyEngine : IPolicyEngine
{
    /// <summary>Name used in logs and metrics for decisions this engine fails to make.</summary>
    string Name { get; }

    /// <summary>False when the engine has no endpoint configured; the decider then uses the built-in rules.</summary>
    bool IsConfigured { get; }
}

/// <summary>A remote engine could not decide; the message says why (no request content in it).</summary>
public sealed class PolicyEngineException(string message, Exception? inner = null) : Exception(message, inner);
