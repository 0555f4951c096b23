using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging.Abstractions;
using ModelGateway.Api.Ledger;

namespace ModelGateway.Api.Tests.Ledger;

public sealed class DurableBatchWriterTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>
    /// A store that refuses negative numbers as data and can be made unavailable. Like the Postgres sinks, it refuses a
    /// record stored already unless told the batch is a retry, and then skips it; it can lose the acknowledgement of a
    /// batch it stored (a connection dropped after the commit).
    /// </summary>
    private sealed class Store : IBatchSink<int>
    {
        public ConcurrentQueue<int> Stored { get; } = new();
        public ConcurrentQueue<bool> RetryFlags { get; } = new();
        public volatile bool Down;
        public volatile bool LoseNextAcknowledgement;
        public int Calls;

        public Task WriteAsync(IReadOnlyList<int> batch, bool retry, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref Calls);
            RetryFlags.Enqueue(retry);
            if (Down)
            {
                throw new IOException("store unavailable");
            }
            if (batch.Any(x => x < 0))
            {
                throw new InvalidDataException("refused: negative");
            }
            if (!retry && batch.Any(Stored.Contains))
            {
                throw new InvalidDataException("refused: duplicate key");
            }
            foreach (var x in batch.Where(x => !Stored.Contains(x)))
            {
                Stored.Enqueue(x);
            }
            if (LoseNextAcknowledgement)
            {
                LoseNextAcknowledgement = false;
                throw new IOException("connection lost after the commit");
            }
            return Task.CompletedTask;
        }

        public bool IsRejection(Exception exception) => exception is InvalidDataException;

        public string Describe(int record) => $"#{record}";
    }

    private static (DurableBatchWriter<int> Writer, Task Loop, CancellationTokenSource Stop) Start(IBatchSink<int> store, int capacity = 100,
        int writers = 1, TimeSpan slotWait = default, string name = "test")
    {
        var writer = new DurableBatchWriter<int>(store, new BatchWriterSettings(name, capacity, 10, TimeSpan.FromMilliseconds(5),
            TimeSpan.FromMilliseconds(50), writers, slotWait), NullLogger.Instance);
        var stop = new CancellationTokenSource();
        var loop = Task.Run(() => writer.RunAsync(stop.Token, CancellationToken.None), Ct);
        return (writer, loop, stop);
    }

    private static void Queue(DurableBatchWriter<int> writer, IEnumerable<int> records)
    {
        foreach (var r in records)
        {
            Assert.True(writer.TryReserveSlot());
            writer.Write(r);
        }
    }

    [Fact]
    public void The_buffer_holds_as_many_records_as_slots_and_refuses_a_record_written_without_one()
    {
        // No writer loop: nothing leaves the buffer. Every slot's record fits; a record written past them is a bug in
        // the caller, which the writer reports instead of dropping the record or growing past its capacity.
        var writer = new DurableBatchWriter<int>(new Store(), new BatchWriterSettings("slots", 3, 10, TimeSpan.FromMilliseconds(5),
            TimeSpan.FromMilliseconds(50)), NullLogger.Instance);
        Queue(writer, [1, 2, 3]);
        Assert.False(writer.TryReserveSlot());

        var ex = Assert.Throws<InvalidOperationException>(() => writer.Write(4));
        Assert.Contains("without a slot", ex.Message);
        Assert.Equal(3, writer.SlotsInUse);
    }

    [Fact]
    public void A_backlog_as_deep_as_the_capacity_takes_no_new_memory()
    {
        // The buffer's storage is grown to the capacity when the writer is made, so a backlog (a slow store) does not
        // allocate and keep a larger array minutes into steady traffic: 20,000 records queued, no writer loop.
        var writer = new DurableBatchWriter<int>(new Store(), new BatchWriterSettings("backlog", 20_000, 10, TimeSpan.FromMilliseconds(5),
            TimeSpan.FromMilliseconds(50)), NullLogger.Instance);
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 20_000; i++)
        {
            writer.TryReserveSlot();
            writer.Write(i);
        }
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(20_000, writer.SlotsInUse);
        Assert.True(allocated < 16 * 1024, $"{allocated} bytes allocated while queueing"); // growing it as it filled: ~256 KB
    }

    [Fact]
    public async Task A_record_the_store_refuses_is_set_aside_and_every_other_record_is_stored()
    {
        var store = new Store();
        var (writer, loop, stop) = Start(store);
        Queue(writer, [1, 2, -3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);

        Assert.True(await writer.FlushAsync(TimeSpan.FromSeconds(10), Ct));
        Assert.Equal([1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12], store.Stored.Order());
        Assert.Equal(1, writer.Rejected);
        Assert.Equal(0, writer.SlotsInUse); // the refused record's slot is free again: the buffer cannot silt up

        // Later records flow as before.
        Queue(writer, [13, 14]);
        Assert.True(await writer.FlushAsync(TimeSpan.FromSeconds(10), Ct));
        Assert.Contains(14, store.Stored);
        await stop.CancelAsync();
        await loop;
    }

    [Fact]
    public async Task A_batch_whose_commit_went_unacknowledged_is_retried_as_a_retry_and_stored_once()
    {
        var store = new Store { LoseNextAcknowledgement = true };
        var (writer, loop, stop) = Start(store);
        Queue(writer, [1, 2, 3, 4, 5]);

        Assert.True(await writer.FlushAsync(TimeSpan.FromSeconds(10), Ct));
        Assert.Equal([1, 2, 3, 4, 5], store.Stored.Order());
        Assert.Equal(0, writer.Rejected);
        Assert.Equal([false, true], store.RetryFlags); // a first attempt need not look for stored records; the retry must

        // The next batch is a first attempt again.
        Queue(writer, [6, 7]);
        Assert.True(await writer.FlushAsync(TimeSpan.FromSeconds(10), Ct));
        Assert.Equal([false, true, false], store.RetryFlags);
        Assert.Equal(0, writer.SlotsInUse);
        await stop.CancelAsync();
        await loop;
    }

    [Fact]
    public async Task An_unavailable_store_is_retried_and_nothing_is_set_aside()
    {
        var store = new Store { Down = true };
        var (writer, loop, stop) = Start(store, capacity: 5);
        Queue(writer, [1, 2, 3, 4, 5]);
        Assert.False(writer.TryReserveSlot()); // full while the store is down: new work is refused, not records dropped
        await Task.Delay(300, Ct);
        Assert.True(store.Calls > 1, "the batch is retried");
        Assert.Empty(store.Stored);

        store.Down = false;
        Assert.True(await writer.FlushAsync(TimeSpan.FromSeconds(10), Ct));
        Assert.Equal([1, 2, 3, 4, 5], store.Stored.Order());
        Assert.Equal(0, writer.Rejected);
        Assert.Equal(0, writer.SlotsInUse);
        await stop.CancelAsync();
        await loop;
    }

    /// <summary>A store whose batches containing 0 wait until released (a slow insert), the others are stored at once.</summary>
    private sealed class SlowZeroStore : IBatchSink<int>
    {
        public ConcurrentQueue<int> Stored { get; } = new();
        public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public async Task WriteAsync(IReadOnlyList<int> batch, bool retry, CancellationToken cancellationToken)
        {
            if (batch.Contains(0))
            {
                await Release.Task.WaitAsync(cancellationToken);
            }
            foreach (var x in batch)
            {
                Stored.Enqueue(x);
            }
        }
    }

    [Fact]
    public async Task With_several_writers_a_slow_batch_does_not_hold_back_the_others_and_every_record_is_stored_once()
    {
        var store = new SlowZeroStore();
        var (writer, loop, stop) = Start(store, capacity: 1000, writers: 3);

        Queue(writer, [0]); // a batch with the slow record
        await Task.Delay(50, Ct);
        Queue(writer, Enumerable.Range(1, 209));
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (store.Stored.Count < 209 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10, Ct);
        }
        // Everything after the slow batch is stored while it is still waiting (its batch may have taken a few later records).
        Assert.DoesNotContain(0, store.Stored);
        Assert.True(store.Stored.Count >= 200, $"{store.Stored.Count} records stored while one batch was slow");
        Assert.Equal(210 - store.Stored.Count, writer.SlotsInUse);

        store.Release.SetResult();
        Assert.True(await writer.FlushAsync(TimeSpan.FromSeconds(10), Ct));
        Assert.Equal(Enumerable.Range(0, 210), store.Stored.Order());
        Assert.Equal(0, writer.SlotsInUse);
        await stop.CancelAsync();
        await loop;
    }

    /// <summary>A store that counts its inserts and how many run at once.</summary>
    private sealed class CountingStore : IBatchSink<int>
    {
        private int _running;
        public int Batches;
        public int MaxAtOnce;
        public int Stored;

        public async Task WriteAsync(IReadOnlyList<int> batch, bool retry, CancellationToken cancellationToken)
        {
            var running = Interlocked.Increment(ref _running);
            InterlockedMax(ref MaxAtOnce, running);
            await Task.Delay(2, cancellationToken);
            Interlocked.Increment(ref Batches);
            Interlocked.Add(ref Stored, batch.Count);
            Interlocked.Decrement(ref _running);
        }

        private static void InterlockedMax(ref int target, int value)
        {
            int seen;
            while ((seen = Volatile.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, seen) != seen)
            {
            }
        }
    }

    [Fact]
    public async Task Writers_gather_one_batch_at_a_time_so_a_store_that_keeps_up_gets_one_insert_per_flush_interval()
    {
        // Three writers, a 100 ms flush interval, a record every 5 ms for a second, a store that keeps up: one batch per
        // interval. When every idle writer gathered at once, the records were split between them: about three times the
        // inserts, arriving together.
        var store = new CountingStore();
        var writer = new DurableBatchWriter<int>(store, new BatchWriterSettings("gather", 10_000, 10_000, TimeSpan.FromMilliseconds(100),
            TimeSpan.FromMilliseconds(50), Writers: 3), NullLogger.Instance);
        using var stop = new CancellationTokenSource();
        var loop = Task.Run(() => writer.RunAsync(stop.Token, CancellationToken.None), Ct);
        var sent = 0;
        var until = DateTime.UtcNow.AddSeconds(1);
        while (DateTime.UtcNow < until)
        {
            Queue(writer, [sent++]);
            await Task.Delay(5, Ct);
        }
        Assert.True(await writer.FlushAsync(TimeSpan.FromSeconds(10), Ct));
        await stop.CancelAsync();
        await loop;

        Assert.Equal(sent, store.Stored);
        Assert.InRange(store.Batches, 1, 14); // ~10 intervals in the second, plus the last partial one and timer slack
        Assert.Equal(1, store.MaxAtOnce);
    }

    [Fact]
    public async Task A_full_buffer_makes_a_request_wait_for_room_and_refuses_it_only_when_none_frees_in_time()
    {
        // The writer's metrics, for this writer only (the instruments are process-wide): buffered records, slot waits.
        var name = "wait-test-" + Guid.NewGuid().ToString("N");
        int? buffered = null;
        var waits = new ConcurrentQueue<string>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == "ModelGateway.Api" && instrument.Name.StartsWith("model_gateway.writer.", StringComparison.Ordinal))
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        string? Tag(ReadOnlySpan<KeyValuePair<string, object?>> tags, string key)
        {
            foreach (var t in tags)
            {
                if (t.Key == key)
                {
                    return t.Value as string;
                }
            }
            return null;
        }
        listener.SetMeasurementEventCallback<int>((_, value, tags, _) =>
        {
            if (Tag(tags, "model_gateway.writer") == name)
            {
                buffered = value;
            }
        });
        listener.SetMeasurementEventCallback<long>((instrument, _, tags, _) =>
        {
            if (instrument.Name == "model_gateway.writer.slot_waits" && Tag(tags, "model_gateway.writer") == name)
            {
                waits.Enqueue(Tag(tags, "model_gateway.writer.result")!);
            }
        });
        listener.Start();

        var store = new Store { Down = true };
        var (writer, loop, stop) = Start(store, capacity: 5, slotWait: TimeSpan.FromMilliseconds(300), name: name);
        Queue(writer, [1, 2, 3, 4, 5]);
        listener.RecordObservableInstruments();
        Assert.Equal(5, buffered);

        // The store frees nothing: refused after the wait, not at once and not never.
        var sw = System.Diagnostics.Stopwatch.StartNew();
        Assert.False(await writer.ReserveSlotAsync(Ct));
        Assert.InRange(sw.ElapsedMilliseconds, 250, 5000);

        // The store comes back while a request waits: it gets the room the written batch frees.
        var waiting = writer.ReserveSlotAsync(Ct).AsTask();
        await Task.Delay(50, Ct);
        Assert.False(waiting.IsCompleted);
        store.Down = false;
        Assert.True(await waiting);
        Assert.Equal(1, writer.SlotsInUse);
        listener.RecordObservableInstruments();
        Assert.Equal(1, buffered);
        Assert.Equal(["refused", "admitted"], waits.ToArray());
        writer.ReleaseSlot();
        await stop.CancelAsync();
        await loop;
    }
}
