using ModelGateway.Api.Routing;

namespace ModelGateway.Api.Tracing;

/// <summary>
/// One authenticated chat request in the trace history. <see cref="Id"/> is the ledger row's id when the request was
/// admitted (the two join on it), otherwise a fresh UUIDv7; <see cref="TraceId"/> is the W3C trace id returned in
/// <c>x-trace-id</c>. Requests refused before admission (policy, rate limit, budget) are recorded with status
/// <c>refused</c> and no attempts. <see cref="StructuredOutput"/> is the structured-output verdict as JSON (jsonb), null when the
/// request asked for none or no answer was checked: <c>{"result","source","schema_sha256","coerce","repair","errors"}</c>
/// (<see cref="ModelGateway.Api.StructuredOutput.StructuredOutputPlan.ToTraceJson"/>).
/// A value, not an object: it waits in the trace writer's buffer for a batch, long enough to outlive the GC's young
/// generations, and as an object every one became old-generation garbage (docs/benchmark.md, session 13). For the same
/// reason it refers to nothing of its request (<see cref="W3CTraceId"/>, <see cref="Routing.AttemptLog"/>): what it
/// pointed to was promoted with it (session 21). Its names are the route table's and the caller cache's.
/// </summary>
internal readonly record struct TraceRecord(
    Guid Id,
    W3CTraceId TraceId,
    DateTimeOffset Ts,
    string TenantId,
    string KeyId,
    string? Alias,
    AttemptLog Attempts,
    string? Provider,
    string? UpstreamModel,
    string Status,
    int HttpStatus,
    double? TimeToFirstTokenMs,
    double LatencyMs,
    int InputTokens,
    int OutputTokens,
    int CachedTokens,
    long CostMicroUsd,
    bool Stream,
    string? StructuredOutput);
