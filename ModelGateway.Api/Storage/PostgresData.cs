using Npgsql;

namespace ModelGateway.Api.Storage;

/// <summary>Postgres for the gateway: how its connections are tuned, and what Postgres will and will not store, for the batch sinks.</summary>
internal static class PostgresData
{
    /// <summary>Statements each physical connection keeps prepared (Npgsql's auto-preparation) unless the connection string says.</summary>
    public const int AutoPrepared = 32;

    /// <summary>
    /// The gateway's connections, tuned for what it sends most: the ledger's and the traces' batch inserts, a few a second per
    /// table whatever the traffic (a batch waits at most the flush interval). With small batches Postgres's cost is per
    /// statement, not per row: parsing and planning an insert of 19 array parameters, and the reset Npgsql prepends when a pooled
    /// connection is reused (RESET ALL, DISCARD and the like). Measured on the bench's Postgres (paced streams, ~190 requests/s,
    /// ~40 inserts/s, tables of 2.8 M rows): 410-510 ms of Postgres CPU per 8 s probe, 260-270 with both settings; at saturation
    /// (batches of hundreds of rows) no change (docs/benchmark.md, session 18).
    /// <list type="bullet">
    /// <item>Auto-preparation: a statement run five times on a connection is prepared there, so later runs skip the parse and the plan.
    /// An explicit <c>Max Auto Prepare</c> wins (0 turns it off, as a PgBouncer in transaction mode before 1.21 needs).</item>
    /// <item>No reset on close: the gateway leaves no session state behind (no SET, LISTEN, temporary tables or session locks; the
    /// migrations' lock is transaction-scoped), so there is nothing to reset. An explicit <c>No Reset On Close</c> wins.</item>
    /// </list>
    /// </summary>
    public static void Tune(NpgsqlConnectionStringBuilder connection)
    {
        // What the string itself sets: Npgsql's ContainsKey is true for every keyword it knows, set or not; it writes the ones
        // set under their canonical names ("Max Auto Prepare"), which a plain builder's case-insensitive lookup finds.
        var given = new System.Data.Common.DbConnectionStringBuilder { ConnectionString = connection.ConnectionString };
        if (!given.ContainsKey("Max Auto Prepare"))
        {
            connection.MaxAutoPrepare = AutoPrepared;
        }
        if (!given.ContainsKey("No Reset On Close"))
        {
            connection.NoResetOnClose = true;
        }
    }

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
