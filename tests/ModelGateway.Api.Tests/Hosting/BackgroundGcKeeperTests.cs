using System.ComponentModel.DataAnnotations;
using System.Runtime;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ModelGateway.Api.Hosting;

namespace ModelGateway.Api.Tests.Hosting;

/// <summary>The keeper that asks for a background gen2 before the runtime's background-GC thread would exit.</summary>
public sealed class BackgroundGcKeeperTests
{
    private static readonly TimeSpan KeepAlive = TimeSpan.FromSeconds(12);

    [Fact]
    public void A_collection_is_due_at_the_first_look_and_after_the_keep_alive_without_one()
    {
        var watch = new BackgroundGcKeeper.Watch(KeepAlive);
        Assert.True(watch.ShouldCollect(0, TimeSpan.Zero)); // at start, while the heap is small
        Assert.False(watch.ShouldCollect(0, TimeSpan.FromSeconds(11.9)));
        Assert.True(watch.ShouldCollect(0, TimeSpan.FromSeconds(12)));
        Assert.False(watch.ShouldCollect(0, TimeSpan.FromSeconds(23.9))); // counted again from the one just asked for
        Assert.True(watch.ShouldCollect(0, TimeSpan.FromSeconds(24)));
    }

    [Fact]
    public void A_collection_the_runtime_ran_on_its_own_restarts_the_count()
    {
        var watch = new BackgroundGcKeeper.Watch(KeepAlive);
        Assert.True(watch.ShouldCollect(3, TimeSpan.Zero));
        Assert.False(watch.ShouldCollect(4, TimeSpan.FromSeconds(10))); // one finished by itself at ~10 s
        Assert.False(watch.ShouldCollect(4, TimeSpan.FromSeconds(21.9)));
        Assert.True(watch.ShouldCollect(4, TimeSpan.FromSeconds(22)));
        Assert.False(watch.ShouldCollect(5, TimeSpan.FromSeconds(40))); // seen late: not due at once, counted from now
        Assert.False(watch.ShouldCollect(5, TimeSpan.FromSeconds(51.9)));
    }

    [Theory]
    [InlineData(false, GCLatencyMode.Interactive, 12, true)]
    [InlineData(false, GCLatencyMode.SustainedLowLatency, 12, true)]
    [InlineData(true, GCLatencyMode.Interactive, 12, false)] // Server GC's background threads never exit
    [InlineData(false, GCLatencyMode.Batch, 12, false)] // no concurrent GC: no background gen2 to keep
    [InlineData(false, GCLatencyMode.Interactive, 0, false)] // turned off
    public void It_works_only_where_the_background_thread_can_exit(bool serverGc, GCLatencyMode mode, int seconds, bool applies) =>
        Assert.Equal(applies, BackgroundGcKeeper.Applies(serverGc, mode, TimeSpan.FromSeconds(seconds)));

    [Theory]
    [InlineData("00:00:12", true)]
    [InlineData("00:00:00", true)]
    [InlineData("00:00:15", true)]
    [InlineData("00:00:16", false)] // too close to the runtime's 20 s with a look every quarter
    public void The_keep_alive_stays_under_the_runtimes_limit(string value, bool valid)
    {
        var options = new RuntimeOptions { BackgroundGcKeepAlive = TimeSpan.Parse(value, System.Globalization.CultureInfo.InvariantCulture) };
        Assert.Equal(valid, Validator.TryValidateObject(options, new ValidationContext(options), null, validateAllProperties: true));
    }

    [Fact]
    public async Task Running_it_asks_for_background_collections_and_they_happen()
    {
        Assert.SkipUnless(BackgroundGcKeeper.Applies(GCSettings.IsServerGC, GCSettings.LatencyMode, KeepAlive),
            "this test process runs Server GC or without concurrent GC");
        var ct = TestContext.Current.CancellationToken;
        // The runtime runs a gen2 over a heap of a few megabytes blocking in any case ("too small" for a background one);
        // the gateway's heap is tens of megabytes, as is this.
        var heap = Enumerable.Range(0, 32).Select(_ => new byte[1 << 20]).ToArray();
        var keeper = new BackgroundGcKeeper(Options.Create(new RuntimeOptions { BackgroundGcKeepAlive = TimeSpan.FromMilliseconds(400) }),
            TimeProvider.System, NullLogger<BackgroundGcKeeper>.Instance);
        var before = GC.GetGCMemoryInfo(GCKind.Background).Index;
        await keeper.StartAsync(ct);
        try
        {
            // One at start, then one whenever 0.4 s pass without one: the first may run blocking (the thread is new), the
            // next ones find the thread and run in the background.
            var deadline = DateTime.UtcNow.AddSeconds(20);
            while ((keeper.Requested < 3 || GC.GetGCMemoryInfo(GCKind.Background).Index == before) && DateTime.UtcNow < deadline)
            {
                await Task.Delay(50, ct);
            }
            Assert.True(keeper.Requested >= 3, $"asked {keeper.Requested} times");
            Assert.True(GC.GetGCMemoryInfo(GCKind.Background).Index > before, "no background gen2 finished");
        }
        finally
        {
            await keeper.StopAsync(ct);
        }
        GC.KeepAlive(heap);
        var asked = keeper.Requested;
        await Task.Delay(600, ct);
        Assert.Equal(asked, keeper.Requested); // stopped means stopped
    }
}
