using Npgsql;

namespace ModelGateway.Api.Storage;

/// <summary>What Postgres will and will not store, for the batch sinks.</summary>
internal static class PostgresData
{
    /// <summary>
    /// Runs a batch statement with Npgsql's synchronous API on a thread of its own. Measured under load (bench/run.sh, a
    /// busy core): the async path's continuations queued behind every request on the thread pool, and a 500-row trace
    /// insert that Postgres executes in ~25 ms took 300–950 ms end to end, until the trace buffer filled and requests were
    /// refused; on its own thread the batch competes for the core as one thread among the pool's, not as one work item
    /// behind thousands. Cancellation cancels the statement on the server. The threads are kept (<see cref="StatementThreads"/>).
    /// </summary>
    public static Task ExecuteOnOwnThreadAsync(NpgsqlCommand command, CancellationToken cancellationToken) =>
        StatementThreads.Shared.Run(() =>
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var cancel = cancellationToken.Register(static c => ((NpgsqlCommand)c!).Cancel(), command);
            try
            {
                command.ExecuteNonQuery();
            }
            catch (Exception) when (cancellationToken.IsCancellationRequested)
            {
                throw new OperationCanceledException(cancellationToken);
            }
        });

    /// <summary>
    /// Threads kept for batch statements: one per statement in flight, made when none is idle and never ended, so there are
    /// as many as the writers ever ran at once. A thread made per statement (<c>TaskCreationOptions.LongRunning</c>) came and
    /// went a few dozen times a second under load, and the process's native memory crept with it (docs/benchmark.md, session 13).
    /// </summary>
    internal sealed class StatementThreads
    {
        public static readonly StatementThreads Shared = new();

        private readonly Stack<Worker> _idle = new();

        public Task Run(Action work)
        {
            Worker? worker;
            lock (_idle)
            {
                _idle.TryPop(out worker);
            }
            worker ??= new Worker(this);
            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            worker.Start(work, done);
            return done.Task;
        }

        private sealed class Worker
        {
            private readonly StatementThreads _owner;
            private readonly SemaphoreSlim _start = new(0);
            private Action? _work;
            private TaskCompletionSource? _done;

            public Worker(StatementThreads owner)
            {
                _owner = owner;
                new Thread(Loop) { IsBackground = true, Name = "Postgres batch statement" }.UnsafeStart();
            }

            public void Start(Action work, TaskCompletionSource done)
            {
                (_work, _done) = (work, done);
                _start.Release();
            }

            private void Loop()
            {
                while (true)
                {
                    _start.Wait();
                    var (work, done) = (_work!, _done!);
                    (_work, _done) = (null, null);
                    Exception? failure = null;
                    try
                    {
                        work();
                    }
                    catch (Exception ex)
                    {
                        failure = ex;
                    }
                    // Idle again before the caller hears back, so the caller's next statement finds this thread.
                    lock (_owner._idle)
                    {
                        _owner._idle.Push(this);
                    }
                    if (failure is null)
                    {
                        done.SetResult();
                    }
                    else
                    {
                        done.SetException(failure);
                    }
                }
            }
        }
    }

    /// <summary>
    /// Text Postgres accepts: it has no NUL character in <c>text</c> (or <c>\u0000</c> in <c>jsonb</c>), and a client may
    /// send one in any string it controls (the model name, for one). NUL becomes U+FFFD; text longer than
    /// <paramref name="maxLength"/> is cut, so a hostile 1 MiB model name is not stored whole in every trace.
    /// </summary>
    public static string? Text(string? value, int maxLength = 256)
    {
        if (value is null)
        {
            return null;
        }
        if (value.Length > maxLength)
        {
            value = value[..maxLength];
        }
        return value.Contains('\0', StringComparison.Ordinal) ? value.Replace('\0', '\uFFFD') : value;
    }

    /// <summary>
    /// Appended to a sink's insert when the batch is a retry, so rows an earlier attempt stored are skipped. A first attempt
    /// goes without: the conflict check cost Postgres 15-25 % more per row (docs/benchmark.md, session 12), and a first
    /// attempt has nothing stored to skip; were a row refused as a duplicate anyway (a rejection, class 23), the writer
    /// stores the batch record by record as retries.
    /// </summary>
    public const string SkipStored = " ON CONFLICT (id) DO NOTHING";

    /// <summary>
    /// True when Postgres refused the data itself (SQLSTATE class 22, data exception, or 23, integrity violation): the same
    /// statement would fail again, so retrying it cannot help; anything else (connection lost, server shutting down) may.
    /// </summary>
    public static bool IsRejection(Exception exception) =>
        exception is PostgresException { SqlState: var state } && (state.StartsWith("22", StringComparison.Ordinal) || state.StartsWith("23", StringComparison.Ordinal));
}
