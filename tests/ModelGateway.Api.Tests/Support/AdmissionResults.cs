using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace ModelGateway.Api.Tests.Support;

/// <summary>
/// Counts <c>model_gateway.admission.duration</c> measurements of one tenant by result (admitted, admitted_leased,
/// admitted_locally, refused, unavailable) while it lives. The meter is process-wide: give each test a tenant id of its own.
/// </summary>
public sealed class AdmissionResults : IDisposable
{
    private readonly ConcurrentDictionary<string, int> _counts = new();
    private readonly MeterListener _listener;

    public AdmissionResults(string tenant)
    {
        _listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == "ModelGateway.Api" && instrument.Name == "model_gateway.admission.duration")
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        _listener.SetMeasurementEventCallback<double>((_, _, tags, _) =>
        {
            string? measured = null, result = null;
            foreach (var t in tags)
            {
                (measured, result) = t.Key switch
                {
                    "model_gateway.tenant.id" => (t.Value as string, result),
                    "model_gateway.admission.result" => (measured, t.Value as string),
                    _ => (measured, result),
                };
            }
            if (measured == tenant && result is not null)
            {
                _counts.AddOrUpdate(result, 1, (_, n) => n + 1);
            }
        });
        _listener.Start();
    }

    public int this[string result] => _counts.GetValueOrDefault(result);

    public IReadOnlyDictionary<string, int> Snapshot() => new Dictionary<string, int>(_counts);

    public override string ToString() => string.Join(", ", _counts.OrderBy(kv => kv.Key).Select(kv => $"{kv.Key}={kv.Value}"));

    public void Dispose() => _listener.Dispose();
}
