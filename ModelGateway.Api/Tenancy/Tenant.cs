namespace ModelGateway.Api.Tenancy;

/// <summary>A tenant's settings as the request path needs them. Money in micro-dollars.</summary>
internal sealed record Tenant(
    string Id,
    string Name,
    IReadOnlyList<string> AllowedModels,
    int? MaxOutputTokens,
    long? MaxMicroUsdPerRequest,
    long? BudgetMicroUsd,
    string BudgetPeriod,
    int? RequestsPerMinute,
    int? TokensPerMinute,
    ModelGateway.Policy.Rules.TenantPolicy Policy)
{
    public bool MayUse(string alias) => AllowedModels.Count == 0 || AllowedModels.Contains(alias, StringComparer.Ordinal);
}

/// <summary>Who is calling: a tenant through one of its keys.</summary>
internal sealed record Caller(Tenant Tenant, string KeyId);
