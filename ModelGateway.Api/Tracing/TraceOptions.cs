using System.ComponentModel.DataAnnotations;

namespace ModelGateway.Api.Tracing;

/// <summary>Section <c>Traces</c>: the trace history's batched writer and its retention.</summary>
public sealed class TraceOptions : Ledger.BatchWriterOptions
{
    public const string SectionName = "Traces";

    /// <summary>How long traces are kept (default 30 days); older ones are deleted by the background clean-up.</summary>
    [Range(typeof(TimeSpan), "00:01:00", "3650.00:00:00")]
    public TimeSpan Retention { get; set; } = TimeSpan.FromDays(30);

    /// <summary>How often the clean-up runs (default 1 hour).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "7.00:00:00")]
    public TimeSpan CleanupInterval { get; set; } = TimeSpan.FromHours(1);
}
