using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;
using ModelGateway.Api.ChatCompletions;
using ModelGateway.Api.Configuration;
using ModelGateway.Api.Providers;
using ModelGateway.Api.Routing;

namespace ModelGateway.Api.Tests.Routing;

/// <summary>
/// The router against a scripted adapter: the cases the fake upstream cannot produce on demand (a stream whose first
/// event is an error) and the bookkeeping that needs controlled time (the breaker's retry-after and status).
/// </summary>
public sealed class ModelRouterTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_stream_whose_first_event_is_an_error_is_retried_on_the_next_target()
    {
        var adapter = new ScriptedAdapter
        {
            ["bad"] = () => new ScriptedStream(new StreamEvent(StreamEventKind.Error,
                """{"error":{"message":"Overloaded","type":"api_error"}}"""u8.ToArray())),
            ["good"] = () => new ScriptedStream(new StreamEvent(StreamEventKind.Chunk, "{}"u8.ToArray())),
        };
        var (router, _, routes) = Build(adapter, [("a", [("bad", 1_000_000), ("good", 1)], [])]);

        var routed = await router.SendAsync(Request("a", stream: true), routes["a"], null, Ct);

        Assert.Null(routed.Failure);
        Assert.Equal("good", routed.Target!.Model);
        Assert.Equal(["bad", "good"], adapter.Calls);
        Assert.Equal("stream_error", routed.Attempts[0].ErrorType);
        await routed.Events!.DisposeAsync();
        routed.Stream!.Dispose();
    }

    [Fact]
    public async Task A_target_shared_by_an_alias_and_its_fallback_is_tried_once()
    {
        var adapter = new ScriptedAdapter { ["down"] = () => Failure(500) };
        var (router, _, routes) = Build(adapter, [("a", [("down", 1)], ["b"]), ("b", [("down", 1)], [])]);

        var routed = await router.SendAsync(Request("a"), routes["a"], null, Ct);

        Assert.Equal(502, routed.Failure!.StatusCode);
        Assert.Equal(["down"], adapter.Calls);
    }

    [Fact]
    public async Task When_every_target_is_cooling_the_client_gets_the_time_left_and_429_if_providers_rate_limited()
    {
        var adapter = new ScriptedAdapter
        {
            ["limited"] = () => Failure(429, TimeSpan.FromSeconds(20)),
            ["broken"] = () => Failure(503),
        };
        var (router, time, routes) = Build(adapter, [("limited", [("limited", 1)], []), ("broken", [("broken", 1)], [])]);

        Assert.Equal(429, (await router.SendAsync(Request("limited"), routes["limited"], null, Ct)).Failure!.StatusCode);
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(502, (await router.SendAsync(Request("broken"), routes["broken"], null, Ct)).Failure!.StatusCode);
        }
        time.Advance(TimeSpan.FromSeconds(5));

        var limited = (await router.SendAsync(Request("limited"), routes["limited"], null, Ct)).Failure!;
        var broken = (await router.SendAsync(Request("broken"), routes["broken"], null, Ct)).Failure!;

        Assert.Equal((429, "rate_limit_error", TimeSpan.FromSeconds(15)), (limited.StatusCode, limited.Type, limited.RetryAfter));
        Assert.Equal((503, "upstream_unavailable", TimeSpan.FromSeconds(25)), (broken.StatusCode, broken.Code, broken.RetryAfter));
        Assert.Equal(["limited", "broken", "broken", "broken"], adapter.Calls);
    }

    [Fact]
    public async Task A_lone_target_whose_breaker_opens_is_not_retried_after_its_retry_after()
    {
        var adapter = new ScriptedAdapter { ["flaky"] = () => Failure(503, TimeSpan.FromMilliseconds(1)) };
        var (router, _, routes) = Build(adapter, [("a", [("flaky", 1)], [])], cooldownAfterFailures: 1);

        var routed = await router.SendAsync(Request("a"), routes["a"], null, Ct);

        // One failure opened the breaker (threshold 1): waiting out the 1 ms retry-after would only hit it again.
        Assert.Equal(502, routed.Failure!.StatusCode);
        Assert.Equal(["flaky"], adapter.Calls);
    }

    private static ProviderFailure Failure(int status, TimeSpan? retryAfter = null) =>
        ProviderFailure.FromStatus(status, $"HTTP {status}", null, retryAfter);

    private static ChatRequest Request(string model, bool stream = false)
    {
        var body = Encoding.UTF8.GetBytes(new JsonObject
        {
            ["model"] = model,
            ["stream"] = stream,
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "hi" }),
        }.ToJsonString());
        return ChatRequest.Parse(body, out var error) ?? throw new InvalidOperationException(error!.Message);
    }

    private static (ModelRouter Router, FakeTimeProvider Time, Dictionary<string, Route> Routes) Build(ScriptedAdapter adapter,
        (string Alias, (string Model, int Weight)[] Targets, string[] Fallbacks)[] routes, int cooldownAfterFailures = 3)
    {
        var options = new GatewayOptions
        {
            Providers = { ["scripted"] = new ProviderOptions { Type = ProviderTypes.OpenAICompatible, BaseUrl = "http://upstream.test" } },
            Routing = new RoutingOptions { Backoff = TimeSpan.Zero, CooldownAfterFailures = cooldownAfterFailures, Cooldown = TimeSpan.FromSeconds(30) },
        };
        foreach (var (alias, targets, fallbacks) in routes)
        {
            options.Routes[alias] = new RouteOptions
            {
                Targets = targets.Select(t => new TargetOptions { Provider = "scripted", Model = t.Model, Weight = t.Weight }).ToList(),
                Fallbacks = [.. fallbacks],
            };
        }
        var wrapped = Microsoft.Extensions.Options.Options.Create(options);
        var time = new FakeTimeProvider(DateTimeOffset.UnixEpoch.AddYears(50));
        var table = new RouteTable(wrapped);
        var router = new ModelRouter(table, new TargetHealth(wrapped, time), [adapter], new NoHttp(), wrapped, time);
        return (router, time, routes.ToDictionary(r => r.Alias, r => table.TryGet(r.Alias, out var x) ? x : throw new InvalidOperationException()));
    }

    /// <summary>Answers each upstream model with what its script returns, and records the order of calls.</summary>
    private sealed class ScriptedAdapter : Dictionary<string, Func<ProviderResponse>>, IProviderAdapter
    {
        public List<string> Calls { get; } = [];

        public string ProviderType => ProviderTypes.OpenAICompatible;

        public Task<ProviderResponse> SendAsync(ProviderCall call, CancellationToken cancellationToken)
        {
            Calls.Add(call.Target.Model);
            return Task.FromResult(this[call.Target.Model]());
        }
    }

    private sealed class ScriptedStream(params StreamEvent[] events) : ProviderStream
    {
        public override async IAsyncEnumerable<StreamEvent> ReadEventsAsync([EnumeratorCancellation] CancellationToken cancellationToken)
        {
            foreach (var e in events)
            {
                await Task.Yield();
                yield return e;
            }
        }
    }

    private sealed class NoHttp : IHttpMessageHandlerFactory
    {
        public HttpMessageHandler CreateHandler(string name) => new SocketsHttpHandler();
    }
}
