using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace ModelGateway.Api.Telemetry;

/// <summary>
/// The gateway's own counters, beside the GenAI instruments: requests by outcome, refusals by reason, spend by tenant.
/// Tags are bounded sets (outcomes, reason codes, tenant ids); never the client's model string, which is unbounded.
/// </summary>
internal static class GatewayMetrics
{
    private static readonly Counter<long> Requests = GenAITelemetry.Meter.CreateCounter<long>("model_gateway.requests", "{request}",
        "Authenticated chat requests by outcome (ok, refused, upstream_error, stream_error, client_disconnected, error).");

    private static readonly Counter<long> Refusals = GenAITelemetry.Meter.CreateCounter<long>("model_gateway.admissions.refused", "{request}",
        "Requests refused before reaching a provider, by reason (rate_limit_rpm, rate_limit_tpm, budget_exceeded, policy_denied, ...).");

    private static readonly Counter<double> Spend = GenAITelemetry.Meter.CreateCounter<double>("model_gateway.spend", "{USD}",
        "Settled cost in US dollars, by tenant.");

    public static void RequestEnded(string tenantId, string outcome, int httpStatus, long costMicroUsd)
    {
        Requests.Add(1, new TagList
        {
            { "model_gateway.tenant.id", tenantId },
            { "model_gateway.outcome", outcome },
            { "http.response.status_code", httpStatus },
        });
        if (costMicroUsd > 0)
        {
            Spend.Add(costMicroUsd / 1_000_000.0, new TagList { { "model_gateway.tenant.id", tenantId } });
        }
    }

    public static void Refused(string tenantId, string reason) =>
        Refusals.Add(1, new TagList { { "model_gateway.tenant.id", tenantId }, { "model_gateway.refusal.reason", reason } });
}
