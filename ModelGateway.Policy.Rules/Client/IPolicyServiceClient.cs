using Refit;

namespace ModelGateway.Policy.Rules.Client;

/// <summary>The Policy service's decision endpoint, as the Api calls it (Refit, source-generated JSON).</summary>
public interface IPolicyServiceClient
{
    /// <summary>
    /// Asks the Policy service to decide (OPA for tenants configured for it). Authenticated by the
    /// <see cref="PolicyServiceAuth.ServiceKeyHeader"/> header the client adds. Throws on non-2xx.
    /// </summary>
    [Post("/api/policy/decide")]
    Task<PolicyDecision> DecideAsync([Body(buffered: true)] PolicyDecisionRequest request, CancellationToken cancellationToken = default);
}
