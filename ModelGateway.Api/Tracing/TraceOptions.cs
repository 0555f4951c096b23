using System.ComponentModel.DataAnnotations;

namespace ModelGateway.Api.Tracing;

/// <summary>Section <c>Traces</c>: the trace history's batched writer and its retention.</summary>
public sealed class TraceOptions
{
    public const string SectionName = "Traces";

    /// <summary>How long traces are kept (default 30 days); older ones are deleted by the background clean-up.</summary>
    [Range(typeof(TimeSpan), "00:01:00", "3650.00:00:00")]
    public TimeSpan Retention { get; set; } = TimeSpan.FromDays(30);

    /// <summary>How often the clean-up runs (default 1 hour).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "7.00:00:00")]
    public TimeSpan CleanupInterval { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Traces held while Postgres is slow or down (default 20 000). When full, new requests get 503 rather than traces being lost.</summary>
    [Range(1, 10_000_000)]
    public int Capacity { get; set; } = 20_000;

    /// <summary>Traces per insert (default 500).</summary>
    [Range(1, 10_000)]
    public int BatchSize { get; set; } = 500;

    /// <summary>How long the writer waits to fill a batch (default 200 ms).</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "00:01:00")]
    public TimeSpan FlushInterval { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Longest pause between retries while Postgres is unavailable (default 5 s).</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:10:00")]
    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromSeconds(5);
}
