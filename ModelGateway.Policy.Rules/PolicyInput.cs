namespace ModelGateway.Policy.Rules;

/// <summary>
/// What a policy decides on: one request, described by the fields a rule can reason about. Serialised in
/// snake_case; this is also the shape of OPA's <c>input</c> document (plus a <c>policy</c> member, see
/// docs/policy.md).
/// </summary>
/// <remarks>
/// The request's content travels only in <see cref="Text"/>, and only when the tenant's policy has deny
/// patterns (<see cref="TenantPolicy.InspectsText"/>): a tenant without patterns never ships prompts to
/// OPA, the decision cache or the logs (which carry a digest, never the input).
/// </remarks>
public sealed record PolicyInput
{
    /// <summary>Tenant id, taken from the authenticated API key (never from the request body).</summary>
    public required string Tenant { get; init; }

    /// <summary>Id of the API key that authenticated the request (not the key itself).</summary>
    public string? KeyId { get; init; }

    /// <summary>Model alias the client asked for.</summary>
    public required string Model { get; init; }

    /// <summary>Provider type the request is routed to (<c>openai</c>, <c>anthropic</c>, <c>llamacpp</c>...), when known.</summary>
    public string? Provider { get; init; }

    public int EstimatedInputTokens { get; init; }

    /// <summary>Output tokens the request asks for; null when the client set no limit.</summary>
    public int? MaxOutputTokens { get; init; }

    /// <summary>Worst-case cost of the request (prompt estimate + max output tokens at the route's prices).</summary>
    public decimal EstimatedCostUsd { get; init; }

    public bool Stream { get; init; }

    public bool HasTools { get; init; }

    /// <summary><c>text</c>, <c>json_object</c> or <c>json_schema</c>; null when the request set none.</summary>
    public string? ResponseFormat { get; init; }

    public string? ClientIp { get; init; }

    /// <summary>When the request arrived; time-of-day windows are evaluated against it (RFC 3339 on the wire).</summary>
    public required DateTimeOffset Time { get; init; }

    /// <summary>
    /// The request text the deny patterns look at (message contents joined by newlines). Set it only when
    /// <see cref="TenantPolicy.InspectsText"/> is true; a policy with patterns denies when it is missing.
    /// </summary>
    public string? Text { get; init; }
}
