using Microsoft.Extensions.Options;
using Npgsql;

namespace ModelGateway.Api.Tracing;

/// <summary>
/// Deletes traces older than <see cref="TraceOptions.Retention"/> every <see cref="TraceOptions.CleanupInterval"/>, timed by
/// the injected <see cref="TimeProvider"/> (tests advance it). Deletes in bounded chunks so a large backlog never holds
/// one long lock on the table; each replica may run it, the deletes are idempotent.
/// </summary>
internal sealed partial class TraceRetentionService(NpgsqlDataSource db, IOptions<TraceOptions> options, TimeProvider time,
    ILogger<TraceRetentionService> logger) : BackgroundService
{
    private const int ChunkSize = 10_000;
    private readonly TraceOptions _options = options.Value;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(_options.CleanupInterval, time, stoppingToken);
                await DeleteExpiredAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
            {
                LogCleanupFailed(logger, ex.Message);
            }
        }
    }

    /// <summary>Deletes every trace older than the retention as of now; returns how many.</summary>
    public async Task<long> DeleteExpiredAsync(CancellationToken cancellationToken)
    {
        var cutoff = time.GetUtcNow() - _options.Retention;
        long total = 0;
        while (true)
        {
            await using var cmd = db.CreateCommand(
                "DELETE FROM traces WHERE id IN (SELECT id FROM traces WHERE ts < @cutoff LIMIT @chunk)");
            cmd.Parameters.AddWithValue("cutoff", cutoff);
            cmd.Parameters.AddWithValue("chunk", ChunkSize);
            var deleted = await cmd.ExecuteNonQueryAsync(cancellationToken);
            total += deleted;
            if (deleted < ChunkSize)
            {
                break;
            }
        }
        if (total > 0)
        {
            LogDeleted(logger, total, cutoff);
        }
        return total;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Trace retention: deleted {Count} trace(s) older than {Cutoff:o}")]
    private static partial void LogDeleted(ILogger logger, long count, DateTimeOffset cutoff);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Trace retention clean-up failed; retrying at the next interval: {Reason}")]
    private static partial void LogCleanupFailed(ILogger logger, string reason);
}
