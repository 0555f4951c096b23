using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace ModelGateway.Realtime.Sessions;

/// <summary>The spans and metrics of the realtime endpoint (exported by ServiceDefaults' "ModelGateway.*" filters).</summary>
internal sealed class RealtimeTelemetry : IDisposable
{
    public const string Name = "ModelGateway.Realtime";

    public static readonly ActivitySource ActivitySource = new(Name);

    private readonly Meter _meter;

    public RealtimeTelemetry(IMeterFactory meterFactory)
    {
        _meter = meterFactory.Create(Name);
        SessionsStarted = _meter.CreateCounter<long>("realtime.sessions.started", description: "Sessions created by an answered offer.");
        SessionsEnded = _meter.CreateCounter<long>("realtime.sessions.ended", description: "Sessions closed, tagged by reason.");
        ActiveSessions = _meter.CreateUpDownCounter<long>("realtime.sessions.active", description: "Sessions open now.");
        SetupDuration = _meter.CreateHistogram<double>("realtime.session.setup.duration", unit: "s", description: "From answer to the first open data channel.");
        OffersRejected = _meter.CreateCounter<long>("realtime.offers.rejected", description: "Offers refused, tagged by reason.");
        Messages = _meter.CreateCounter<long>("realtime.messages", description: "Data-channel messages, tagged by direction.");
        ChatRequests = _meter.CreateCounter<long>("realtime.chat.requests", description: "Chat requests received on channels, tagged by outcome.");
        TimeToFirstChunk = _meter.CreateHistogram<double>("realtime.chat.time_to_first_chunk", unit: "s", description: "From a request on the channel to its first chunk sent back.");
    }

    public Counter<long> SessionsStarted { get; }
    public Counter<long> SessionsEnded { get; }
    public UpDownCounter<long> ActiveSessions { get; }
    public Histogram<double> SetupDuration { get; }
    public Counter<long> OffersRejected { get; }
    public Counter<long> Messages { get; }
    public Counter<long> ChatRequests { get; }
    public Histogram<double> TimeToFirstChunk { get; }

    public void Dispose() => _meter.Dispose();
}
