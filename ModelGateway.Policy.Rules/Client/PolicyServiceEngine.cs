namespace ModelGateway.Policy.Rules.Client;

/// <summary>
/// The Api's view of OPA: the Policy service's decision endpoint. Failures throw and are turned into
/// fail-closed / fail-open decisions by <see cref="Decisions.PolicyDecider"/>.
/// </summary>
internal sealed class PolicyServiceEngine(IPolicyServiceClient client) : IRemotePolicyEngine
{
    public string Name => "policy-service";

    public bool IsConfigured => true;

    public async ValueTask<PolicyDecision> DecideAsync(PolicyInput input, TenantPolicy policy, CancellationToken cancellationToken)
        => await client.DecideAsync(new PolicyDecisionRequest { Input = input, Policy = policy }, cancellationToken).ConfigureAwait(false);
}
