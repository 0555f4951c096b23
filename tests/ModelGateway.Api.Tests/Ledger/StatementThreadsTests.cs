using ModelGateway.Api.Storage;

namespace ModelGateway.Api.Tests.Ledger;

/// <summary>The threads batch statements run on: kept and reused, one per statement in flight, failures passed on.</summary>
public sealed class StatementThreadsTests
{
    [Fact]
    public async Task Statements_one_after_another_reuse_a_thread_and_statements_at_once_get_one_each()
    {
        var threads = new PostgresData.StatementThreads();
        var seen = new List<Thread>();
        for (var i = 0; i < 5; i++)
        {
            await threads.Run(() => { lock (seen) { seen.Add(Thread.CurrentThread); } });
        }
        // Five statements in turn: one thread (a thread made per statement would be five), not the caller's or the pool's.
        var first = Assert.Single(seen.Distinct());
        Assert.NotSame(Thread.CurrentThread, first);
        Assert.False(first.IsThreadPoolThread);
        Assert.True(first.IsBackground);

        // Three at once, each held until all three have started: three threads, the idle one among them.
        using var started = new CountdownEvent(3);
        var together = new Thread[3];
        await Task.WhenAll(Enumerable.Range(0, 3).Select(i => threads.Run(() =>
        {
            together[i] = Thread.CurrentThread;
            started.Signal();
            Assert.True(started.Wait(TimeSpan.FromSeconds(10)));
        })));
        Assert.Equal(3, together.Distinct().Count());
        Assert.Contains(first, together);
    }

    [Fact]
    public async Task A_failing_statement_fails_its_task_and_the_thread_serves_the_next()
    {
        var threads = new PostgresData.StatementThreads();
        Thread? failed = null, next = null;
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => threads.Run(() =>
        {
            failed = Thread.CurrentThread;
            throw new InvalidOperationException("refused");
        }));
        Assert.Equal("refused", ex.Message);
        await threads.Run(() => next = Thread.CurrentThread);
        Assert.NotNull(failed);
        Assert.Same(failed, next);
    }
}
