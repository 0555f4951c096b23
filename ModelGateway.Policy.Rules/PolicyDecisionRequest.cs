namespace ModelGateway.Policy.Rules;

/// <summary>Body of the Policy service's <c>POST /api/policy/decide</c>.</summary>
public sealed record PolicyDecisionRequest
{
    public required PolicyInput Input { get; init; }

    public required TenantPolicy Policy { get; init; }
}
