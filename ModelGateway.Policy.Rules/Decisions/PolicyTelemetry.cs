using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace ModelGateway.Policy.Rules.Decisions;

/// <summary>
/// The "ModelGateway.Policy" meter and activity source (exported by the service defaults' "ModelGateway.*"
/// subscription), shared by the Api's in-process decisions and the Policy service.
/// </summary>
public sealed class PolicyTelemetry
{
    public const string Name = "ModelGateway.Policy";

    /// <summary>One span per decision.</summary>
    public static readonly ActivitySource ActivitySource = new(Name);

    private readonly Counter<long> _decisions;
    private readonly Counter<long> _engineFailures;
    private readonly Counter<long> _cacheLookups;
    private readonly Histogram<double> _duration;

    public PolicyTelemetry(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(Name);
        _decisions = meter.CreateCounter<long>("policy.decisions", "{decision}", "Policy decisions, by engine and outcome.");
        _engineFailures = meter.CreateCounter<long>("policy.engine.failures", "{failure}", "Remote engine failures that were turned into fail-closed or fail-open decisions.");
        _cacheLookups = meter.CreateCounter<long>("policy.opa.cache.lookups", "{lookup}", "OPA decision cache lookups, by hit.");
        _duration = meter.CreateHistogram<double>("policy.decision.duration", "s", "Time to decide.");
    }

    internal void Decided(PolicyDecision decision, TimeSpan elapsed)
    {
        var tags = new TagList
        {
            { "policy.engine", decision.Engine },
            { "policy.outcome", decision.Allow ? "allow" : "deny" },
            { "policy.fail_open", decision.FailOpen },
        };
        _decisions.Add(1, tags);
        _duration.Record(elapsed.TotalSeconds, new KeyValuePair<string, object?>("policy.engine", decision.Engine));
    }

    internal void EngineFailed(string engine, bool failOpen)
        => _engineFailures.Add(1, new("policy.engine", engine), new("policy.fail_open", failOpen));

    /// <summary>Used by the OPA engine of the Policy service.</summary>
    public void CacheLookup(bool hit) => _cacheLookups.Add(1, new KeyValuePair<string, object?>("policy.cache.hit", hit));
}
