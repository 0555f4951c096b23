using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.Time.Testing;
using ModelGateway.Policy.Rules;
using ModelGateway.Policy.Rules.Client;
using ModelGateway.Policy.Tests.Support;

namespace ModelGateway.Policy.Tests.Opa;

/// <summary>
/// The OPA engine against a local fake that replays OPA's documented REST answers (result object,
/// undefined <c>{}</c>, 400/500 error objects, a hang, <c>/health</c>), through the service's
/// <c>POST /api/policy/decide</c>.
/// </summary>
public sealed class OpaContractTests : FakeOpaTestBase
{
    private HttpClient _client = null!;
    private readonly FakeTimeProvider _time = new(Inputs.Monday10Utc);

    private static readonly TenantPolicy OpaTenant = new() { Engine = PolicyEngineKind.Opa, AllowedModels = ["chat-*"] };

    protected override FakeTimeProvider Time => _time;

    public override async ValueTask InitializeAsync()
    {
        await base.InitializeAsync();
        _client = Service.CreateClient();
        _client.DefaultRequestHeaders.Add(PolicyServiceAuth.ServiceKeyHeader, PolicyServiceFactory.ServiceKey);
    }

    public override async ValueTask DisposeAsync()
    {
        _client.Dispose();
        await base.DisposeAsync();
    }

    private async Task<PolicyDecision> DecideAsync(TenantPolicy policy, PolicyInput? input = null)
    {
        var response = await _client.PostAsJsonAsync("/api/policy/decide",
            new PolicyDecisionRequest { Input = input ?? Inputs.Request(), Policy = policy },
            PolicyJsonContext.Default.PolicyDecisionRequest, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync(PolicyJsonContext.Default.PolicyDecision, TestContext.Current.CancellationToken))!;
    }

    [Fact]
    public async Task Result_object_becomes_the_decision_and_the_request_follows_the_data_api()
    {
        Opa.Enqueue(FakeOpaServer.Result("""{"allow":true,"reasons":[],"max_output_tokens":128}""", decisionId: "opa-decision-1"));

        var decision = await DecideAsync(OpaTenant, Inputs.Request(text: "hello"));

        Assert.True(decision.Allow);
        Assert.Empty(decision.Reasons);
        Assert.Equal(128, decision.MaxOutputTokens);
        Assert.Equal(PolicyEngineNames.Opa, decision.Engine);
        Assert.Equal("opa-decision-1", decision.DecisionId); // OPA's decision id, for its decision log

        var sent = Assert.Single(Opa.Requests);
        Assert.Equal("gateway/decision", sent.Path);
        var input = sent.Body!["input"]!;
        Assert.Equal("acme", (string?)input["tenant"]);
        Assert.Equal("chat-default", (string?)input["model"]);
        Assert.Equal("hello", (string?)input["text"]);
        Assert.Equal("2025-06-02T10:00:00+00:00", (string?)input["time"]);
        Assert.Equal("chat-*", (string?)input["policy"]!["allowed_models"]![0]);
        Assert.Equal("opa", (string?)input["policy"]!["engine"]);
    }

    [Fact]
    public async Task Deny_result_carries_opa_reasons()
    {
        Opa.Enqueue(FakeOpaServer.Result("""{"allow":false,"reasons":["model 'x' is denied for this tenant"],"max_output_tokens":null}"""));

        var decision = await DecideAsync(OpaTenant);

        Assert.False(decision.Allow);
        Assert.Equal(["model 'x' is denied for this tenant"], decision.Reasons);
        Assert.Null(decision.MaxOutputTokens);
    }

    [Fact]
    public async Task Undefined_result_fails_closed()
    {
        Opa.Enqueue(FakeOpaServer.Undefined);

        var decision = await DecideAsync(OpaTenant);

        Assert.False(decision.Allow);
        Assert.False(decision.FailOpen);
        Assert.Equal(PolicyEngineNames.Opa, decision.Engine);
        Assert.Contains("undefined at data.gateway.decision", Assert.Single(decision.Reasons));
    }

    [Fact]
    public async Task Undefined_result_fails_open_for_a_fail_open_tenant()
    {
        Opa.Enqueue(FakeOpaServer.Undefined);

        var decision = await DecideAsync(OpaTenant with { FailOpen = true });

        Assert.True(decision.Allow);
        Assert.True(decision.FailOpen);
        Assert.Contains("undefined", Assert.Single(decision.Reasons));
    }

    [Fact]
    public async Task Bad_request_error_fails_closed_with_opa_error()
    {
        Opa.Enqueue(FakeOpaServer.BadRequest);

        var decision = await DecideAsync(OpaTenant);

        Assert.False(decision.Allow);
        var reason = Assert.Single(decision.Reasons);
        Assert.Contains("OPA answered 400 invalid_parameter", reason);
        Assert.Contains("rego_parse_error", reason);
    }

    [Fact]
    public async Task Server_error_fails_closed()
    {
        Opa.Enqueue(FakeOpaServer.ServerError);

        var decision = await DecideAsync(OpaTenant);

        Assert.False(decision.Allow);
        Assert.Contains("OPA answered 500 internal_error", Assert.Single(decision.Reasons));
    }

    [Fact]
    public async Task Result_without_boolean_allow_fails_closed()
    {
        Opa.Enqueue(FakeOpaServer.Result("""{"allowed":true}"""), FakeOpaServer.Result("true"));

        Assert.False((await DecideAsync(OpaTenant)).Allow);
        Assert.False((await DecideAsync(OpaTenant, Inputs.Request(model: "other"))).Allow);
    }

    [Fact]
    public async Task Slow_opa_times_out_and_fails_closed()
    {
        Opa.Enqueue(FakeOpaServer.Result("""{"allow":true}""") with { Delay = TimeSpan.FromSeconds(5) });
        var started = System.Diagnostics.Stopwatch.StartNew();

        var decision = await DecideAsync(OpaTenant);

        Assert.False(decision.Allow);
        Assert.Contains("did not answer within 2000 ms", Assert.Single(decision.Reasons));
        Assert.True(started.Elapsed < TimeSpan.FromSeconds(3), $"took {started.Elapsed}");
    }

    [Fact]
    public async Task Identical_inputs_hit_the_cache_until_the_ttl_passes()
    {
        Opa.DefaultReply = FakeOpaServer.Result("""{"allow":true,"reasons":[]}""");

        var first = await DecideAsync(OpaTenant);
        var second = await DecideAsync(OpaTenant, Inputs.Request(time: Inputs.Monday10Utc.AddSeconds(20))); // same minute
        Assert.Single(Opa.Requests);
        Assert.True(second.Allow);
        Assert.NotEqual(first.DecisionId, second.DecisionId);

        await DecideAsync(OpaTenant, Inputs.Request(model: "chat-local")); // another input
        await DecideAsync(OpaTenant with { FailOpen = true }); // another policy
        Assert.Equal(3, Opa.Requests.Count);

        _time.Advance(TimeSpan.FromSeconds(6)); // past the 5 s TTL
        await DecideAsync(OpaTenant);
        Assert.Equal(4, Opa.Requests.Count);
    }

    [Fact]
    public async Task Failures_are_not_cached()
    {
        Opa.Enqueue(FakeOpaServer.Undefined, FakeOpaServer.Result("""{"allow":true}"""));

        Assert.False((await DecideAsync(OpaTenant)).Allow);
        Assert.True((await DecideAsync(OpaTenant)).Allow);
        Assert.Equal(2, Opa.Requests.Count);
    }

    [Fact]
    public async Task Built_in_tenants_never_reach_opa()
    {
        var decision = await DecideAsync(new TenantPolicy { AllowedModels = ["x"] });

        Assert.False(decision.Allow);
        Assert.Equal(PolicyEngineNames.BuiltIn, decision.Engine);
        Assert.Empty(Opa.Requests);
    }

    [Fact]
    public async Task Health_reflects_opa_health()
    {
        var healthy = await _client.GetStringAsync("/health", TestContext.Current.CancellationToken);
        Assert.Equal("""{"status":"Healthy","engine":"opa","opa":"healthy"}""", healthy);

        Opa.HealthReply = new FakeOpaServer.Reply(HttpStatusCode.InternalServerError, """{"error":"not all plugins in OK state"}""");
        var response = await _client.GetAsync("/health", TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode); // degraded, still serving
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
        Assert.Equal("Degraded", body.RootElement.GetProperty("status").GetString());
        Assert.Equal("unhealthy: GET /health answered 500", body.RootElement.GetProperty("opa").GetString());

        var alive = await _client.GetAsync("/alive", TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, alive.StatusCode);
    }
}

/// <summary>OPA that cannot be reached at all.</summary>
public sealed class OpaUnreachableTests
{
    [Fact]
    public async Task Unreachable_opa_fails_closed_and_degrades_health()
    {
        // A port that was free a moment ago: nothing listens there.
        var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();

        await using var service = new PolicyServiceFactory(new Uri($"http://127.0.0.1:{port}"));
        using var client = service.CreateClient();
        client.DefaultRequestHeaders.Add(PolicyServiceAuth.ServiceKeyHeader, PolicyServiceFactory.ServiceKey);

        var response = await client.PostAsJsonAsync("/api/policy/decide",
            new PolicyDecisionRequest { Input = Inputs.Request(), Policy = new TenantPolicy { Engine = PolicyEngineKind.Opa } },
            PolicyJsonContext.Default.PolicyDecisionRequest, TestContext.Current.CancellationToken);
        var decision = (await response.Content.ReadFromJsonAsync(PolicyJsonContext.Default.PolicyDecision, TestContext.Current.CancellationToken))!;

        Assert.False(decision.Allow);
        Assert.Contains("OPA is unreachable", Assert.Single(decision.Reasons));

        using var health = JsonDocument.Parse(await client.GetStringAsync("/health", TestContext.Current.CancellationToken));
        Assert.Equal("Degraded", health.RootElement.GetProperty("status").GetString());
        Assert.StartsWith("unreachable", health.RootElement.GetProperty("opa").GetString());
    }
}
