using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.Extensions.Options;
using ModelGateway.Policy.Rules;

namespace ModelGateway.Policy.Opa;

/// <summary>
/// A small cache of OPA decisions, so a burst of identical requests costs one OPA call. Keyed by a SHA-256
/// of the relevant fields: the whole input with its time truncated to the minute (the resolution of the
/// shipped policy's time windows), plus the tenant policy. Entries live <see cref="OpaOptions.CacheTtl"/>;
/// at <see cref="OpaOptions.CacheSize"/> expired entries are swept, and if none expired the cache is
/// emptied (simple and bounded; the next seconds refill it). Only real OPA answers are cached, never a
/// fail-closed or fail-open decision.
/// </summary>
internal sealed class OpaDecisionCache(IOptions<OpaOptions> options, TimeProvider timeProvider)
{
    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);

    private readonly record struct Entry(PolicyDecision Decision, long ExpiresAt);

    public int Count => _entries.Count;

    public static string KeyFor(PolicyInput input, TenantPolicy policy)
    {
        var minute = input.Time.UtcDateTime;
        minute = new DateTime(minute.Ticks - (minute.Ticks % TimeSpan.TicksPerMinute), DateTimeKind.Utc);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(JsonSerializer.SerializeToUtf8Bytes(input with { Time = minute }, PolicyJsonContext.Default.PolicyInput));
        hash.AppendData(JsonSerializer.SerializeToUtf8Bytes(policy, PolicyJsonContext.Default.TenantPolicy));
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    public bool TryGet(string key, out PolicyDecision decision)
    {
        if (_entries.TryGetValue(key, out var entry))
        {
            if (entry.ExpiresAt > timeProvider.GetTimestamp())
            {
                decision = entry.Decision;
                return true;
            }

            _entries.TryRemove(KeyValuePair.Create(key, entry));
        }

        decision = null!;
        return false;
    }

    public void Set(string key, PolicyDecision decision)
    {
        var o = options.Value;
        if (o.CacheTtl <= TimeSpan.Zero)
        {
            return;
        }

        var now = timeProvider.GetTimestamp();
        if (_entries.Count >= o.CacheSize)
        {
            foreach (var (k, e) in _entries)
            {
                if (e.ExpiresAt <= now)
                {
                    _entries.TryRemove(KeyValuePair.Create(k, e));
                }
            }

            if (_entries.Count >= o.CacheSize)
            {
                _entries.Clear();
            }
        }

        var ttlTicks = (long)(o.CacheTtl.TotalSeconds * timeProvider.TimestampFrequency);
        _entries[key] = new Entry(decision, now + ttlTicks);
    }
}
