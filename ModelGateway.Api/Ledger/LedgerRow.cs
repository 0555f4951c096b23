namespace ModelGateway.Api.Ledger;

/// <summary>
/// One admitted request in the usage ledger. <see cref="CreatedAt"/> is the admission time: it decides the budget period,
/// so a request that straddles midnight is billed to the period that reserved it. <see cref="RedisEpoch"/> names the Redis
/// spend epoch the cost was counted in (null: not counted in Redis), which lets a rebuild add exactly the rows Redis lacks.
/// A value, not an object, for the reason <see cref="Tracing.TraceRecord"/> gives.
/// </summary>
internal readonly record struct LedgerRow(
    Guid Id,
    string TenantId,
    string KeyId,
    string Alias,
    string? Provider,
    string? UpstreamModel,
    int InputTokens,
    int OutputTokens,
    int CachedTokens,
    long CostMicroUsd,
    string Status,
    int HttpStatus,
    double LatencyMs,
    Tracing.W3CTraceId? TraceId,
    bool Stream,
    bool UsageEstimated,
    string? RedisEpoch,
    DateTimeOffset CreatedAt);
