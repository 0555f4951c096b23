using System.ComponentModel.DataAnnotations;

namespace ModelGateway.Api.Ledger;

/// <summary>Sizing of a <see cref="DurableBatchWriter{T}"/>, shared by the sections that configure one (Ledger, Traces).</summary>
public abstract class BatchWriterOptions
{
    /// <summary>Records held while Postgres is slow or down (default 20 000). When full, new requests get 503 rather than records being lost.</summary>
    [Range(1, 10_000_000)]
    public int Capacity { get; set; } = 20_000;

    /// <summary>Records per insert (default 500).</summary>
    [Range(1, 10_000)]
    public int BatchSize { get; set; } = 500;

    /// <summary>
    /// How long the writer waits to fill a batch (default 50 ms): how far the store lags behind the hot path, and how long
    /// each insert keeps the store busy (rows per batch grow with it; docs/benchmark.md measured 200 ms: bursts that stalled
    /// what shares the store's CPU). Batches reach <see cref="BatchSize"/> sooner under heavy traffic and go at once.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "00:01:00")]
    public TimeSpan FlushInterval { get; set; } = TimeSpan.FromMilliseconds(50);

    /// <summary>Longest pause between retries while Postgres is unavailable (default 5 s).</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:10:00")]
    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Batches written at once, each on its own connection (default 2): a slow insert does not stall the buffer.</summary>
    [Range(1, 16)]
    public int Writers { get; set; } = 2;

    /// <summary>
    /// How long a request waits for room when the buffer is full (default 1 s) before it is refused with 503: a store that
    /// is only slower than the traffic then slows the traffic instead of failing it.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:00:30")]
    public TimeSpan SlotWait { get; set; } = TimeSpan.FromSeconds(1);

    internal BatchWriterSettings ToSettings(string name) => new(name, Capacity, BatchSize, FlushInterval, MaxRetryDelay, Writers, SlotWait);
}

/// <summary>Section <c>Ledger</c>: the batched, durable writer of usage rows.</summary>
public sealed class LedgerOptions : BatchWriterOptions
{
    public const string SectionName = "Ledger";
}
