using System.ComponentModel.DataAnnotations;

namespace ModelGateway.Api.Ledger;

/// <summary>Section <c>Ledger</c>: the batched, durable writer of usage rows.</summary>
public sealed class LedgerOptions
{
    public const string SectionName = "Ledger";

    /// <summary>Rows held while Postgres is slow or down (default 20 000). When full, new requests get 503 rather than rows being lost.</summary>
    [Range(1, 10_000_000)]
    public int Capacity { get; set; } = 20_000;

    /// <summary>Rows per insert (default 500).</summary>
    [Range(1, 10_000)]
    public int BatchSize { get; set; } = 500;

    /// <summary>How long the writer waits to fill a batch (default 200 ms): the ledger's lag behind the hot path.</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "00:01:00")]
    public TimeSpan FlushInterval { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Longest pause between retries while Postgres is unavailable (default 5 s).</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:10:00")]
    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromSeconds(5);
}
