using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using ModelGateway.Realtime.Chat;
using ModelGateway.Realtime.Sessions;

namespace ModelGateway.Realtime.Signalling;

/// <summary>
/// Asks the Api whether a tenant key is valid and remembers the answer briefly, keyed by the key's
/// SHA-256 (the key itself is never stored or logged). "Unavailable" is not remembered.
/// </summary>
internal sealed class ApiKeyValidator(IServiceProvider services, IOptions<RealtimeOptions> options, TimeProvider time)
{
    private const int MaxEntries = 10_000;
    private readonly ConcurrentDictionary<string, (KeyCheck Result, long Expires)> _cache = new();

    public async Task<KeyCheck> ValidateAsync(string apiKey, CancellationToken cancellationToken)
    {
        var hash = Hash(apiKey);
        var now = time.GetTimestamp();
        if (_cache.TryGetValue(hash, out var entry) && entry.Expires > now)
        {
            return entry.Result;
        }
        var result = await services.GetRequiredService<IApiClient>().ValidateKeyAsync(apiKey, cancellationToken).ConfigureAwait(false);
        if (result != KeyCheck.Unavailable)
        {
            if (_cache.Count >= MaxEntries)
            {
                _cache.Clear();
            }
            _cache[hash] = (result, now + (long)(options.Value.KeyCacheDuration.TotalSeconds * time.TimestampFrequency));
        }
        return result;
    }

    /// <summary>
    /// An opaque, stable name for the tenant behind a key, used where a user name is needed (TURN
    /// usernames): the Api's key check does not name the tenant, and the key must not appear.
    /// </summary>
    public static string TenantLabel(string apiKey) => "k" + Hash(apiKey)[..16];

    private static string Hash(string apiKey) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(apiKey)));
}
