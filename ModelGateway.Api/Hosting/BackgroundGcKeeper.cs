using System.ComponentModel.DataAnnotations;
using System.Runtime;
using Microsoft.Extensions.Options;

namespace ModelGateway.Api.Hosting;

/// <summary>Section <c>Runtime</c>: settings for the .NET runtime the gateway runs on.</summary>
public sealed class RuntimeOptions
{
    public const string SectionName = "Runtime";

    /// <summary>
    /// Longest stretch without a background gen2 collection on workstation GC before the gateway asks for one (default
    /// 12 s; zero turns it off). See <see cref="BackgroundGcKeeper"/>: it must stay well under the runtime's 20 s.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:00:15")]
    public TimeSpan BackgroundGcKeepAlive { get; set; } = TimeSpan.FromSeconds(12);
}

/// <summary>
/// Keeps the runtime's background-GC thread alive, so that gen2 collections stay background ones.
/// <para>
/// With one CPU (a small container, or the benchmark's pinned core) .NET runs workstation GC even though the project asks
/// for Server GC. Workstation GC's background thread exits after 20 s without work, and a gen2 that then has to start a
/// new one usually finds it not yet running and falls back to a blocking, compacting full collection
/// (dotnet/runtime#13238; the .NET 10 runtime here still does). Measured under load (docs/benchmark.md, session 20): the
/// gen2s that created the thread stopped the gateway for 37 and 77 ms, those that found it running for at most 4 ms. It is
/// a race (a later capture's two creations won it), and the gen2s at risk are those 20 s or more after the last one, common
/// at moderate load. The stop follows the live heap; the flat tokenizer (Tokenization/O200kEncoding.cs) has since made
/// it much smaller, not zero.
/// </para>
/// <para>
/// So: when no background gen2 has finished for <see cref="RuntimeOptions.BackgroundGcKeepAlive"/>, this asks for one
/// (non-blocking: marking runs beside the requests). Each one restarts the thread's 20 s, so after the first, asked for at
/// start while the heap is small, the thread never exits. Server GC's threads never exit, and without concurrent GC
/// (<see cref="GCLatencyMode.Batch"/>) there is no background gen2: then it does nothing.
/// </para>
/// </summary>
internal sealed class BackgroundGcKeeper(IOptions<RuntimeOptions> options, TimeProvider time, ILogger<BackgroundGcKeeper> logger)
    : BackgroundService
{
    private int _requested;

    /// <summary>Collections asked for so far.</summary>
    internal int Requested => Volatile.Read(ref _requested);

    /// <summary>Whether the keeper has work where it runs.</summary>
    internal static bool Applies(bool serverGc, GCLatencyMode mode, TimeSpan keepAlive) =>
        keepAlive > TimeSpan.Zero && !serverGc && mode is not GCLatencyMode.Batch;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var keepAlive = options.Value.BackgroundGcKeepAlive;
        if (!Applies(GCSettings.IsServerGC, GCSettings.LatencyMode, keepAlive))
        {
            return;
        }
        var watch = new Watch(keepAlive);
        var start = time.GetTimestamp();
        // A quarter of the keep-alive between looks: a collection is noticed at most that late, so the next is asked for
        // within 15 s of the last one's end at the default (the runtime's limit is 20 s).
        using var timer = new PeriodicTimer(keepAlive / 4, time);
        do
        {
            if (watch.ShouldCollect(GC.GetGCMemoryInfo(GCKind.Background).Index, time.GetElapsedTime(start)))
            {
                GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: false);
                Interlocked.Increment(ref _requested);
                logger.LogDebug("Asked for a background gen2 collection to keep the background GC thread alive.");
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
    }

    /// <summary>
    /// The decision, apart from the runtime: given the index of the last finished background collection and the time, is
    /// one due? Due at the first look (none seen yet) and whenever the index has stood still for the keep-alive.
    /// </summary>
    internal sealed class Watch(TimeSpan keepAlive)
    {
        private long _index = -1;
        private TimeSpan _since;

        public bool ShouldCollect(long backgroundIndex, TimeSpan now)
        {
            var first = _index < 0;
            if (first || backgroundIndex != _index)
            {
                _index = backgroundIndex;
                _since = now;
                return first;
            }
            if (now - _since < keepAlive)
            {
                return false;
            }
            _since = now;
            return true;
        }
    }
}
