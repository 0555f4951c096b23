using StackExchange.Redis;

namespace ModelGateway.Api.Budgets;

/// <summary>
/// Connects to Redis while the service starts instead of on the first request: otherwise a burst arriving at a fresh
/// replica queues behind the connection handshake and may time out (a 503 the client did not earn). A Redis that is
/// down at start-up does not stop the service; admission then fails closed per request as usual.
/// </summary>
internal sealed partial class RedisWarmup(IServiceProvider services, ILogger<RedisWarmup> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            var redis = services.GetRequiredService<IConnectionMultiplexer>();
            await redis.GetDatabase().PingAsync();
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            LogNotReady(logger, ex.Message);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(Level = LogLevel.Warning, Message = "Redis is not reachable at start-up; admission fails closed until it is: {Reason}")]
    private static partial void LogNotReady(ILogger logger, string reason);
}
