using System.Diagnostics;
using System.Threading.Channels;

namespace ModelGateway.Api.Ledger;

/// <summary>Where a <see cref="DurableBatchWriter{T}"/> puts its records. Idempotent on a retry: a batch whose commit was
/// not acknowledged (the connection broke after the commit) is written again.</summary>
internal interface IBatchSink<in T>
{
    /// <summary>
    /// Stores a batch in one transaction. <paramref name="retry"/>: an earlier attempt at some of these records failed
    /// without saying whether it was stored (a lost connection can lose a commit's acknowledgement), so records already
    /// stored must be skipped; a first attempt has no such records, and the store need not look for them.
    /// </summary>
    Task WriteAsync(IReadOnlyList<T> batch, bool retry, CancellationToken cancellationToken);

    /// <summary>
    /// True when the store refused the data itself (it would refuse it again however often it is retried), as opposed to
    /// the store being unavailable. The writer then finds the record at fault instead of retrying the batch forever.
    /// </summary>
    bool IsRejection(Exception exception) => false;

    /// <summary>Identifies a record in logs without its content (for example its id).</summary>
    string Describe(T record) => "record";
}

/// <summary>Sizing of one <see cref="DurableBatchWriter{T}"/>.</summary>
internal sealed record BatchWriterSettings(string Name, int Capacity, int BatchSize, TimeSpan FlushInterval, TimeSpan MaxRetryDelay,
    int Writers = 1, TimeSpan SlotWait = default);

/// <summary>
/// Records written in batches off the hot path and never dropped. Capacity is counted in <em>slots</em>: a caller takes
/// a slot before it commits to producing a record (admission) and the slot is freed only once the record is stored, so a
/// record that was promised always has room, and when the store is down the buffer fills and new work is refused
/// (back-pressure) instead of records being lost. Batches that fail are retried with backoff until the store returns.
/// Generic so that traces share the machinery with the usage ledger.
/// </summary>
internal sealed partial class DurableBatchWriter<T> : Telemetry.IObservedWriter
{
    private readonly IBatchSink<T> sink;
    private readonly ILogger logger;

    public DurableBatchWriter(IBatchSink<T> sink, BatchWriterSettings settings, ILogger logger)
    {
        this.sink = sink;
        this.logger = logger;
        Settings = settings;
        // Bounded by the capacity, which the slots already enforce (records queued never outnumber slots taken), so a write
        // always finds room. Bounded because of how it stores: one array, grown to the deepest backlog seen and then reused.
        // The unbounded channel links segments that it drops once read, so records written as values (TraceRecord, LedgerRow)
        // would still leave garbage behind, in segments large enough to go straight to the large-object heap.
        _channel = Channel.CreateBounded<T>(new BoundedChannelOptions(settings.Capacity) { FullMode = BoundedChannelFullMode.Wait });
        // Grow that array to the full capacity now, while nothing is waiting: otherwise it doubles during the first deep
        // backlog (a slow flush), a large-object allocation that then stays, so memory stepped up minutes into steady load
        // (the 5-minute soak: 162 -> 175 MB at 195 s, the trace buffer's 2.6 MB array replaced by a 5.2 MB one;
        // docs/benchmark.md, session 20). The memory is the same, taken at start.
        for (var i = 0; i < settings.Capacity && _channel.Writer.TryWrite(default!); i++)
        {
        }
        while (_channel.Reader.TryRead(out _))
        {
        }
        Telemetry.GatewayMetrics.RegisterWriter(this);
    }

    private readonly Channel<T> _channel;
    private int _slotsInUse;
    private TaskCompletionSource _roomFreed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _enqueued;
    private long _written;
    private long _rejected;

    private readonly SemaphoreSlim _gathering = new(1, 1);

    private static readonly TimeSpan StoppingPoll = TimeSpan.FromMilliseconds(20);

    public BatchWriterSettings Settings { get; }

    string Telemetry.IObservedWriter.Name => Settings.Name;

    /// <summary>Slots taken: records waiting to be stored plus records promised but not yet written.</summary>
    public int SlotsInUse => Volatile.Read(ref _slotsInUse);

    public long Written => Interlocked.Read(ref _written);

    /// <summary>Records the store refused as data (never by unavailability), each logged at Critical; zero in a healthy system.</summary>
    public long Rejected => Interlocked.Read(ref _rejected);

    /// <summary>Takes a slot for a record to come; false when the buffer is full (refuse the work that would produce it).</summary>
    public bool TryReserveSlot()
    {
        while (true)
        {
            var used = Volatile.Read(ref _slotsInUse);
            if (used >= Settings.Capacity)
            {
                return false;
            }
            if (Interlocked.CompareExchange(ref _slotsInUse, used + 1, used) == used)
            {
                return true;
            }
        }
    }

    /// <summary>
    /// Takes a slot, waiting up to <see cref="BatchWriterSettings.SlotWait"/> for one when the buffer is full: a store
    /// that is merely slower than the traffic slows the traffic down (requests wait for room) instead of refusing it,
    /// and only a store that frees nothing in that time (down, or far behind) gets requests refused.
    /// </summary>
    public async ValueTask<bool> ReserveSlotAsync(CancellationToken cancellationToken)
    {
        if (TryReserveSlot())
        {
            return true;
        }
        var admitted = await WaitForSlotAsync(cancellationToken);
        Telemetry.GatewayMetrics.SlotWaited(Settings.Name, admitted);
        return admitted;
    }

    private async ValueTask<bool> WaitForSlotAsync(CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(Settings.SlotWait.TotalSeconds * Stopwatch.Frequency);
        while (Stopwatch.GetTimestamp() < deadline)
        {
            var freed = _roomFreed.Task;
            if (TryReserveSlot())
            {
                return true;
            }
            try
            {
                await freed.WaitAsync(Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), deadline), cancellationToken);
            }
            catch (TimeoutException)
            {
                break;
            }
        }
        return TryReserveSlot();
    }

    /// <summary>Gives back a slot whose record will not be produced after all.</summary>
    public void ReleaseSlot() => FreeSlots(1);

    private void FreeSlots(int count)
    {
        Interlocked.Add(ref _slotsInUse, -count);
        if (Settings.SlotWait > TimeSpan.Zero)
        {
            Interlocked.Exchange(ref _roomFreed, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
        }
    }

    /// <summary>Queues a record for which a slot was reserved. Never blocks, never drops; throws when no slot was reserved (a bug in the caller).</summary>
    public void Write(T record)
    {
        if (!_channel.Writer.TryWrite(record))
        {
            throw new InvalidOperationException($"{Settings.Name}: a record was written without a slot reserved for it.");
        }
        Interlocked.Increment(ref _enqueued);
    }

    /// <summary>Waits until every record queued before the call is stored, or the timeout passes. Returns whether it was.</summary>
    public async Task<bool> FlushAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var target = Interlocked.Read(ref _enqueued);
        var deadline = DateTime.UtcNow + timeout;
        while (Interlocked.Read(ref _written) + Interlocked.Read(ref _rejected) < target)
        {
            if (DateTime.UtcNow >= deadline)
            {
                return false;
            }
            await Task.Delay(10, cancellationToken);
        }
        return true;
    }

    /// <summary>
    /// The writer loop: gather up to a batch (waiting one flush interval for more when the batch is not full), store it,
    /// retry with backoff while the store fails. When <paramref name="stopping"/> fires it keeps going until the buffer is
    /// empty and no slot is outstanding (requests still in flight at shutdown settle and are written), or
    /// <paramref name="abandon"/> fires (the host's shutdown timeout).
    /// </summary>
    public async Task RunAsync(CancellationToken stopping, CancellationToken abandon)
    {
        // Several batches in flight (Settings.Writers), each on its own connection: one slow insert does not hold the
        // buffer back, and the store's work spreads over as many backends.
        await Task.WhenAll(Enumerable.Range(0, Math.Max(1, Settings.Writers)).Select(_ => Task.Run(() => RunWriterAsync(stopping, abandon))));
        if (SlotsInUse > 0)
        {
            LogAbandoned(logger, Settings.Name, SlotsInUse);
        }
    }

    private async Task RunWriterAsync(CancellationToken stopping, CancellationToken abandon)
    {
        var reader = _channel.Reader;
        var batch = new List<T>(Settings.BatchSize);
        var failures = 0;
        while (!abandon.IsCancellationRequested)
        {
            if (batch.Count == 0)
            {
                if (stopping.IsCancellationRequested && SlotsInUse == 0)
                {
                    return;
                }
                try
                {
                    await _gathering.WaitAsync(abandon);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
                try
                {
                    await GatherAsync(reader, batch, stopping, abandon);
                }
                finally
                {
                    _gathering.Release();
                }
                if (batch.Count == 0)
                {
                    continue;
                }
            }

            try
            {
                await sink.WriteAsync(batch, retry: failures > 0, abandon);
                Interlocked.Add(ref _written, batch.Count);
                FreeSlots(batch.Count);
                if (failures > 0)
                {
                    LogRecovered(logger, Settings.Name, failures, batch.Count);
                }
                failures = 0;
                batch.Clear();
            }
            catch (Exception ex) when (sink.IsRejection(ex))
            {
                // One bad record must not hold every later one hostage (its slot would never free and the buffer would
                // fill): store the batch record by record and set aside only what the store refuses as data. Each as a retry:
                // a record an earlier attempt stored without a word is skipped, not refused as a duplicate.
                await WriteOneByOneAsync(batch, abandon);
                batch.Clear();
            }
            catch (OperationCanceledException) when (abandon.IsCancellationRequested)
            {
                break; // the host's shutdown timeout: what is left is logged as abandoned
            }
            catch (Exception ex)
            {
                failures++;
                LogWriteFailed(logger, Settings.Name, batch.Count, SlotsInUse, failures, ex.Message);
                var delay = TimeSpan.FromMilliseconds(Math.Min(Settings.MaxRetryDelay.TotalMilliseconds, 100 * Math.Pow(2, Math.Min(failures, 10))));
                await DelayQuietlyAsync(delay, abandon);
            }
        }
    }

    /// <summary>
    /// Fills <paramref name="batch"/>: what is queued, and if that is less than a batch, what arrives within the flush
    /// interval; or waits until something is queued and leaves it empty. Called by one writer at a time (<see cref="_gathering"/>):
    /// otherwise every idle writer woke on the same record, waited the same interval and inserted at the same moment, so the
    /// store got its work in coincident bursts (a longer stall for whatever shares its CPU) instead of one batch per interval.
    /// </summary>
    private async Task GatherAsync(ChannelReader<T> reader, List<T> batch, CancellationToken stopping, CancellationToken abandon)
    {
        Drain(reader, batch);
        if (batch.Count == 0)
        {
            try
            {
                // While stopping, poll briefly: the loop ends once the outstanding slots are gone (another writer's batch in
                // flight holds slots too, so this writer must look again soon, not after a flush interval).
                var wait = stopping.IsCancellationRequested ? StoppingPoll : Timeout.InfiniteTimeSpan;
                using var cts = CancellationTokenSource.CreateLinkedTokenSource(stopping.IsCancellationRequested ? abandon : stopping, abandon);
                cts.CancelAfter(wait);
                await reader.WaitToReadAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
            }
            return;
        }
        if (batch.Count < Settings.BatchSize && !stopping.IsCancellationRequested)
        {
            await DelayQuietlyAsync(Settings.FlushInterval, stopping);
            Drain(reader, batch);
        }
    }

    private async Task WriteOneByOneAsync(List<T> batch, CancellationToken abandon)
    {
        foreach (var record in batch)
        {
            var attempt = 0;
            while (true)
            {
                try
                {
                    await sink.WriteAsync([record], retry: true, abandon);
                    Interlocked.Increment(ref _written);
                    break;
                }
                catch (Exception ex) when (sink.IsRejection(ex))
                {
                    Interlocked.Increment(ref _rejected);
                    LogRejected(logger, Settings.Name, sink.Describe(record), ex.Message);
                    break;
                }
                catch (OperationCanceledException) when (abandon.IsCancellationRequested)
                {
                    break; // the host's shutdown timeout: what is left is logged as abandoned
                }
                catch (Exception ex)
                {
                    // The store went away meanwhile: this record is still owed, retry it like any batch.
                    LogWriteFailed(logger, Settings.Name, 1, SlotsInUse, ++attempt, ex.Message);
                    await DelayQuietlyAsync(TimeSpan.FromMilliseconds(Math.Min(Settings.MaxRetryDelay.TotalMilliseconds, 100 * Math.Pow(2, Math.Min(attempt, 10)))), abandon);
                    if (abandon.IsCancellationRequested)
                    {
                        return;
                    }
                }
            }
            FreeSlots(1);
        }
    }

    private void Drain(ChannelReader<T> reader, List<T> batch)
    {
        while (batch.Count < Settings.BatchSize && reader.TryRead(out var item))
        {
            batch.Add(item);
        }
    }

    private static async Task DelayQuietlyAsync(TimeSpan delay, CancellationToken cancellationToken)
    {
        try
        {
            // Real time, not TimeProvider: I/O pacing must not stall when a test freezes the clock.
            await Task.Delay(delay, cancellationToken);
        }
        catch (OperationCanceledException)
        {
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Writer}: storing a batch of {Count} failed ({SlotsInUse} slots in use, attempt {Attempt}); retrying: {Reason}")]
    private static partial void LogWriteFailed(ILogger logger, string writer, int count, int slotsInUse, int attempt, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "{Writer}: store available again after {Failures} failed attempt(s); wrote {Count} records")]
    private static partial void LogRecovered(ILogger logger, string writer, int failures, int count);

    [LoggerMessage(Level = LogLevel.Critical, Message = "{Writer}: the store refused {Record} as data and it was set aside: {Reason}")]
    private static partial void LogRejected(ILogger logger, string writer, string record, string reason);

    [LoggerMessage(Level = LogLevel.Critical, Message = "{Writer}: shutdown timeout reached with {Count} record(s) not stored")]
    private static partial void LogAbandoned(ILogger logger, string writer, int count);
}

/// <summary>Runs a <see cref="DurableBatchWriter{T}"/> for the life of the host and drains it on graceful shutdown.</summary>
/// <remarks>
/// Stopping is idempotent and safe after disposal: a host can be stopped twice at once (WebApplicationFactory stops it while
/// the application's own Run, woken by the same stop, stops and then disposes it), which threw ObjectDisposedException here.
/// The token sources are therefore not disposed: no timer or wait handle is ever created on them, so there is nothing to free.
/// </remarks>
internal sealed class BatchWriterService<T>(DurableBatchWriter<T> writer) : IHostedService
{
    private readonly CancellationTokenSource _stopping = new();
    private readonly CancellationTokenSource _abandon = new();
    private readonly Lock _gate = new();
    private Task? _loop;
    private Task? _stopped;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _loop = Task.Run(() => writer.RunAsync(_stopping.Token, _abandon.Token), CancellationToken.None);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            return _stopped ??= StopOnceAsync(cancellationToken);
        }
    }

    private async Task StopOnceAsync(CancellationToken cancellationToken)
    {
        if (_loop is null)
        {
            return;
        }
        // The web server stops first (minimal hosting starts it after the app's hosted services), so by now requests
        // have settled; the loop writes what is left and ends, unless the host's shutdown timeout cuts it short.
        await _stopping.CancelAsync();
        await using var registration = cancellationToken.Register(() => _abandon.Cancel());
        await _loop;
    }
}
