using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using StackExchange.Redis;

namespace ModelGateway.Api.Budgets;

/// <summary>
/// A Lua script run by its SHA-1 (<c>EVALSHA</c>, one round trip). The first call on a server that does not know it yet
/// (a fresh or restarted Redis, or after <c>SCRIPT FLUSH</c>) gets <c>NOSCRIPT</c> and falls back to <c>EVAL</c>, which
/// also loads it, so the steady state sends only the hash. https://redis.io/docs/latest/commands/evalsha/
/// Each run is one CLIENT span (OpenTelemetry database conventions: <c>EVALSHA {name}</c>, <c>db.system.name</c> redis,
/// <c>db.stored_procedure.name</c> the script's name). The gateway spans its scripts itself instead of using the
/// StackExchange.Redis instrumentation: that one works through profiling sessions that keep every traced request's
/// Activity until a drain every 10 s, which under load pushed ~15 MB/s into gen2 and peak RSS from ~230 to ~400 MB
/// (docs/benchmark.md).
/// </summary>
internal sealed class RedisScript(string name, string source)
{
    private readonly byte[] _sha1 = SHA1.HashData(Encoding.UTF8.GetBytes(source));
    private readonly string _spanName = "EVALSHA " + name;
    private readonly string _sourceSpanName = "EVAL " + name;

    public string Name { get; } = name;
    public string Source { get; } = source;

    /// <summary>
    /// Runs the script. The command is queued on the connection before the returned task first yields, so commands sent
    /// after this call returns run after it, unless it meets <c>NOSCRIPT</c> and is sent again; <paramref name="bySource"/>
    /// sends <c>EVAL</c> with the source instead (no hash, so never sent twice), for a rare call whose order matters.
    /// </summary>
    public async Task<RedisResult> EvaluateAsync(IDatabase db, RedisKey[] keys, RedisValue[] args, bool bySource = false)
    {
        using var span = Telemetry.GenAITelemetry.Source.StartActivity(bySource ? _sourceSpanName : _spanName, ActivityKind.Client);
        if (span is not null)
        {
            span.AddTag("db.system.name", "redis");
            span.AddTag("db.operation.name", bySource ? "EVAL" : "EVALSHA");
            span.AddTag("db.stored_procedure.name", Name);
            span.AddTag("db.namespace", db.Database);
        }
        try
        {
            try
            {
                if (bySource)
                {
                    // The raw command: StackExchange.Redis's string overload may itself send the hash and retry on NOSCRIPT.
                    object[] command = [Source, keys.Length, .. keys.Cast<object>(), .. args.Cast<object>()];
                    return await db.ExecuteAsync("EVAL", command);
                }
                return await db.ScriptEvaluateAsync(_sha1, keys, args);
            }
            catch (RedisServerException ex) when (ex.Message.StartsWith("NOSCRIPT", StringComparison.Ordinal))
            {
                return await db.ScriptEvaluateAsync(Source, keys, args);
            }
            catch (InvalidOperationException ex)
            {
                // A write racing the teardown of a failing connection surfaces from StackExchange.Redis as "Writing is not
                // allowed after writer was completed" (seen when Redis was killed under load): it is a connection failure,
                // and the callers' handling of those (fail open or closed, settlement logged) applies.
                throw new RedisConnectionException(ConnectionFailureType.SocketFailure, $"Redis write failed: {ex.Message}", ex);
            }
        }
        catch (Exception ex) when (span is not null)
        {
            span.SetStatus(ActivityStatusCode.Error, ex.Message);
            span.SetTag("error.type", ex.GetType().FullName);
            throw;
        }
    }
}
