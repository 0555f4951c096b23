using System.Security.Cryptography;
using System.Text;
using StackExchange.Redis;

namespace ModelGateway.Api.Budgets;

/// <summary>
/// A Lua script run by its SHA-1 (<c>EVALSHA</c>, one round trip). The first call on a server that does not know it yet
/// (a fresh or restarted Redis, or after <c>SCRIPT FLUSH</c>) gets <c>NOSCRIPT</c> and falls back to <c>EVAL</c>, which
/// also loads it, so the steady state sends only the hash. https://redis.io/docs/latest/commands/evalsha/
/// </summary>
internal sealed class RedisScript(string source)
{
    private readonly byte[] _sha1 = SHA1.HashData(Encoding.UTF8.GetBytes(source));

    public string Source { get; } = source;

    public async Task<RedisResult> EvaluateAsync(IDatabase db, RedisKey[] keys, RedisValue[] args)
    {
        try
        {
            return await db.ScriptEvaluateAsync(_sha1, keys, args);
        }
        catch (RedisServerException ex) when (ex.Message.StartsWith("NOSCRIPT", StringComparison.Ordinal))
        {
            return await db.ScriptEvaluateAsync(Source, keys, args);
        }
    }
}
