using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace ModelGateway.Api.Telemetry;

/// <summary>
/// The gateway's own instruments, beside the GenAI ones: requests by outcome, refusals by reason, spend by tenant, the time
/// the gateway adds ahead of the provider and the part of it admission takes, and the durable writers' buffers.
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

    /// <summary>
    /// Buckets for the gateway's own time, from tens of microseconds to seconds: the default OTel boundaries start at 5 (s),
    /// where everything the gateway adds would land in the first bucket.
    /// </summary>
    private static readonly InstrumentAdvice<double> OwnTimeBuckets = new()
    {
        HistogramBucketBoundaries = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    };

    private static readonly Histogram<double> Overhead = GenAITelemetry.Meter.CreateHistogram("model_gateway.overhead", "s",
        "Time from a chat request's arrival until the gateway hands it to the router (authentication, reading and validating "
        + "the body, policy, admission): what the gateway adds ahead of the provider, by tenant.", advice: OwnTimeBuckets);

    private static readonly Histogram<double> AdmissionDuration = GenAITelemetry.Meter.CreateHistogram("model_gateway.admission.duration", "s",
        "Time admission took (the shared limit store's round trip, this replica's lease of the tenant's headroom, or the local "
        + "limit while the store is unreachable), by tenant and result (admitted, admitted_leased, admitted_locally, refused, unavailable).", advice: OwnTimeBuckets);

    public static void Routed(string tenantId, TimeSpan sinceArrival) =>
        Overhead.Record(sinceArrival.TotalSeconds, new KeyValuePair<string, object?>("model_gateway.tenant.id", tenantId));

    public static void Admitted(string tenantId, string result, TimeSpan took) =>
        AdmissionDuration.Record(took.TotalSeconds, new TagList { { "model_gateway.tenant.id", tenantId }, { "model_gateway.admission.result", result } });

    private static readonly Counter<long> SlotWaits = GenAITelemetry.Meter.CreateCounter<long>("model_gateway.writer.slot_waits", "{request}",
        "Requests that found a durable writer's buffer full and waited for room, by writer and result (admitted, refused).");

    /// <summary>The live durable writers, observed by the buffered-records gauge (weakly held: a stopped host's go away).</summary>
    private static readonly List<WeakReference<IObservedWriter>> Writers = [];

    static GatewayMetrics() =>
        GenAITelemetry.Meter.CreateObservableUpDownCounter("model_gateway.writer.buffered", ObserveWriters, "{record}",
            "Slots taken in a durable writer's buffer (records waiting to be stored plus records promised), by writer; "
            + "near the writer's capacity, requests wait for room and then are refused.");

    public static void RegisterWriter(IObservedWriter writer)
    {
        lock (Writers)
        {
            Writers.RemoveAll(w => !w.TryGetTarget(out _));
            Writers.Add(new WeakReference<IObservedWriter>(writer));
        }
    }

    private static IEnumerable<Measurement<int>> ObserveWriters()
    {
        var measurements = new List<Measurement<int>>();
        lock (Writers)
        {
            foreach (var w in Writers)
            {
                if (w.TryGetTarget(out var writer))
                {
                    measurements.Add(new Measurement<int>(writer.SlotsInUse, new KeyValuePair<string, object?>("model_gateway.writer", writer.Name)));
                }
            }
        }
        return measurements;
    }

    public static void SlotWaited(string writer, bool admitted) =>
        SlotWaits.Add(1, new TagList { { "model_gateway.writer", writer }, { "model_gateway.writer.result", admitted ? "admitted" : "refused" } });

    public static void Refused(string tenantId, string reason) =>
        Refusals.Add(1, new TagList { { "model_gateway.tenant.id", tenantId }, { "model_gateway.refusal.reason", reason } });
}

/// <summary>A durable writer as the metrics see it.</summary>
internal interface IObservedWriter
{
    string Name { get; }
    int SlotsInUse { get; }
}
