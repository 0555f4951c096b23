using Microsoft.Extensions.Options;
using ModelGateway.Api.Budgets;
using StackExchange.Redis;

namespace ModelGateway.Api.Tenancy;

/// <summary>
/// Makes a revocation (or any change to keys and tenants) take effect on every replica at once: the replica that made the
/// change clears its key cache and publishes on a Redis channel; every replica clears its own cache when the message
/// arrives. Redis pub/sub delivers at most once, so the cache TTL (<see cref="TenancyOptions.KeyCacheTtl"/>) remains the
/// bound when Redis is down or a message is missed.
/// </summary>
internal sealed partial class KeyCacheInvalidation(IConnectionMultiplexer redis, TenantStore store, IOptions<BudgetOptions> budgets,
    ILogger<KeyCacheInvalidation> logger) : IHostedService
{
    private readonly RedisChannel _channel = RedisChannel.Literal(budgets.Value.RedisKeyPrefix + "tenancy:key-cache");

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            // Subscriptions are restored by the client after a reconnect.
            await redis.GetSubscriber().SubscribeAsync(_channel, (_, _) => store.InvalidateCache());
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            LogNotSubscribed(logger, ex.Message);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Clears this replica's cache now and tells the others (best effort: the TTL covers a lost message).</summary>
    public async Task InvalidateEverywhereAsync()
    {
        store.InvalidateCache();
        try
        {
            await redis.GetSubscriber().PublishAsync(_channel, "keys-changed");
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            LogNotPublished(logger, ex.Message);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Key cache invalidation not subscribed (Redis unavailable); other replicas' changes apply after the cache TTL: {Reason}")]
    private static partial void LogNotSubscribed(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Key cache invalidation not published (Redis unavailable); other replicas apply the change after the cache TTL: {Reason}")]
    private static partial void LogNotPublished(ILogger logger, string reason);
}
