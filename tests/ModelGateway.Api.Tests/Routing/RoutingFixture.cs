using System.Net.Http.Json;
using System.Text.Json;
using ModelGateway.Api.Tests.Support;

namespace ModelGateway.Api.Tests.Routing;

/// <summary>
/// The gateway with routes built for routing tests: three OpenAI-compatible providers (<c>p1</c>..<c>p3</c>) and one with a
/// short first-byte timeout (<c>impatient</c>), all on the fake upstream, whose magic model names make each target fail
/// the way a test needs. Every test uses its own upstream model names, so the circuit breaker's state (per provider and
/// model) and the fake's per-model counters never leak from one test into another.
/// Routing is tuned for speed: 3 attempts at most, cooled down after 2 failures, for 1 s.
/// </summary>
public sealed class RoutingFixture : GatewayFixture
{
    public static readonly TimeSpan Cooldown = TimeSpan.FromSeconds(1);

    /// <summary>A weight so much larger than 1 that the weighted order puts its target first (odds of the other: 1 in 10⁶).</summary>
    public const int First = 1_000_000;

    protected override IEnumerable<KeyValuePair<string, string?>> ExtraSettings
    {
        get
        {
            var openai = Fake.Client.BaseAddress!.ToString().TrimEnd('/') + "/openai/v1";
            var s = new Dictionary<string, string?>
            {
                ["Gateway:Routing:MaxAttempts"] = "3",
                ["Gateway:Routing:CooldownAfterFailures"] = "2",
                ["Gateway:Routing:Cooldown"] = Cooldown.ToString(),
                ["Gateway:Routing:MaxRetryAfterWait"] = "00:00:02",
            };
            foreach (var p in (string[])["p1", "p2", "p3", "impatient"])
            {
                s[$"Gateway:Providers:{p}:Type"] = "openai_compatible";
                s[$"Gateway:Providers:{p}:BaseUrl"] = openai;
                s[$"Gateway:Providers:{p}:IdleTimeout"] = "00:00:05";
            }
            s["Gateway:Providers:impatient:FirstByteTimeout"] = "00:00:00.300";

            Route(s, "next-target", ("p1", "fault-500@next", First), ("p1", "next-ok", 1));
            Route(s, "fallback-primary", ("p1", "fault-503@fallback", 1));
            s["Gateway:Routes:fallback-primary:Fallbacks:0"] = "fallback-secondary";
            Route(s, "fallback-secondary", ("p2", "fallback-ok", 1));
            Route(s, "weighted", ("p1", "weight-3", 3), ("p1", "weight-1", 1), ("p1", "weight-0", 0));
            Route(s, "cut-then-ok", ("p1", "fault-cut-stream@2", First), ("p1", "cut-never", 1));
            Route(s, "slow-first", ("impatient", "fault-slow-first-token@3000", First), ("p1", "slow-ok", 1));
            Route(s, "cooldown", ("p3", "fault-500@cooldown", First), ("p3", "cooldown-ok", 1));
            Route(s, "heals", ("p1", "fault-fail-first@2", 1));
            Route(s, "retry-after-short", ("p1", "fault-429-first@1", 1));
            Route(s, "retry-after-long", ("p1", "fault-429@30", 1));
            Route(s, "bounded", ("p1", "fault-500@b1", 1), ("p2", "fault-500@b2", 1), ("p3", "fault-500@b3", 1), ("p1", "fault-503@b4", 1));
            Route(s, "slow-chunks", ("p2", "fault-slow-chunks@500", 1));
            return s;
        }
    }

    private static void Route(Dictionary<string, string?> s, string alias, params (string Provider, string Model, int Weight)[] targets)
    {
        for (var i = 0; i < targets.Length; i++)
        {
            s[$"Gateway:Routes:{alias}:Targets:{i}:Provider"] = targets[i].Provider;
            s[$"Gateway:Routes:{alias}:Targets:{i}:Model"] = targets[i].Model;
            s[$"Gateway:Routes:{alias}:Targets:{i}:Weight"] = targets[i].Weight.ToString(System.Globalization.CultureInfo.InvariantCulture);
            s[$"Gateway:Routes:{alias}:Targets:{i}:InputPerMillion"] = "1";
            s[$"Gateway:Routes:{alias}:Targets:{i}:OutputPerMillion"] = "2";
        }
    }

    /// <summary>The requests the fake received for the given upstream models, oldest first (from its last-200 log).</summary>
    public async Task<List<JsonElement>> UpstreamRequestsAsync(params string[] models)
    {
        var all = await Fake.Client.GetFromJsonAsync<JsonElement>("/_fake/requests", TestContext.Current.CancellationToken);
        return all.EnumerateArray()
            .Where(r => r.GetProperty("body").ValueKind == JsonValueKind.Object
                        && r.GetProperty("body").TryGetProperty("model", out var m) && models.Contains(m.GetString()))
            .ToList();
    }

    public async Task<List<string>> UpstreamModelsAsync(params string[] models) =>
        (await UpstreamRequestsAsync(models)).Select(r => r.GetProperty("body").GetProperty("model").GetString()!).ToList();
}
