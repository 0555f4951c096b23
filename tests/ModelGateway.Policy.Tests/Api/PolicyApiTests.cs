using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Options;
using ModelGateway.Policy.Rules;
using ModelGateway.Policy.Rules.Client;
using ModelGateway.Policy.Tests.Support;

namespace ModelGateway.Policy.Tests.Api;

/// <summary>Authentication of both endpoints and the <c>/api/opa/decide</c> passthrough.</summary>
public sealed class PolicyApiTests : FakeOpaTestBase
{
    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private HttpClient Client(string? bearer = null, string? serviceKey = null)
    {
        var client = Service.CreateClient();
        if (bearer is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        }

        if (serviceKey is not null)
        {
            client.DefaultRequestHeaders.Add(PolicyServiceAuth.ServiceKeyHeader, serviceKey);
        }

        return client;
    }

    [Theory]
    [InlineData(null, null)]
    [InlineData("wrong-key", null)]
    [InlineData(PolicyServiceFactory.AdminKey + "x", null)]
    [InlineData(null, PolicyServiceFactory.ServiceKey)] // the service key is not an admin key
    public async Task Opa_decide_requires_the_admin_key(string? bearer, string? serviceKey)
    {
        using var client = Client(bearer, serviceKey);
        var response = await client.PostAsync("/api/opa/decide", Json("{}"), TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("Bearer", response.Headers.WwwAuthenticate.Single().Scheme);
        Assert.Empty(Opa.Requests);
    }

    [Fact]
    public async Task Opa_decide_passes_the_input_through_and_returns_opa_result_as_is()
    {
        Opa.Enqueue(FakeOpaServer.Result("""{"allow":false,"reasons":["custom"],"extra":{"n":1}}"""));
        using var client = Client(PolicyServiceFactory.AdminKey);

        var response = await client.PostAsync("/api/opa/decide", Json("""{"user":"alice","anything":[1,2]}"""), TestContext.Current.CancellationToken);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("""{"allow":false,"reasons":["custom"],"extra":{"n":1}}""", await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
        var sent = Assert.Single(Opa.Requests);
        Assert.Equal("gateway/decision", sent.Path);
        Assert.Equal("""{"input":{"user":"alice","anything":[1,2]}}""", sent.Body!.ToJsonString());
    }

    [Fact]
    public async Task Opa_decide_maps_undefined_errors_and_timeouts()
    {
        using var client = Client(PolicyServiceFactory.AdminKey);
        var ct = TestContext.Current.CancellationToken;

        Opa.Enqueue(FakeOpaServer.Undefined);
        Assert.Equal(HttpStatusCode.NotFound, (await client.PostAsync("/api/opa/decide", Json("{}"), ct)).StatusCode);

        Opa.Enqueue(FakeOpaServer.BadRequest);
        var bad = await client.PostAsync("/api/opa/decide", Json("{}"), ct);
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Equal("invalid_parameter", JsonDocument.Parse(await bad.Content.ReadAsStringAsync(ct)).RootElement.GetProperty("code").GetString());

        Opa.Enqueue(FakeOpaServer.ServerError);
        Assert.Equal(HttpStatusCode.BadGateway, (await client.PostAsync("/api/opa/decide", Json("{}"), ct)).StatusCode);

        Opa.Enqueue(FakeOpaServer.Undefined with { Delay = TimeSpan.FromSeconds(5) });
        Assert.Equal(HttpStatusCode.GatewayTimeout, (await client.PostAsync("/api/opa/decide", Json("{}"), ct)).StatusCode);

        Assert.Equal(HttpStatusCode.BadRequest, (await client.PostAsync("/api/opa/decide", Json("{not json"), ct)).StatusCode);
    }

    [Theory]
    [InlineData(null, null, HttpStatusCode.Unauthorized)]
    [InlineData(null, "wrong", HttpStatusCode.Unauthorized)]
    [InlineData("wrong", null, HttpStatusCode.Unauthorized)]
    [InlineData(null, PolicyServiceFactory.ServiceKey, HttpStatusCode.OK)]
    [InlineData(PolicyServiceFactory.AdminKey, null, HttpStatusCode.OK)]
    public async Task Policy_decide_accepts_the_service_key_or_the_admin_key(string? bearer, string? serviceKey, HttpStatusCode expected)
    {
        using var client = Client(bearer, serviceKey);
        var response = await client.PostAsJsonAsync("/api/policy/decide",
            new PolicyDecisionRequest { Input = Inputs.Request(), Policy = new TenantPolicy() },
            PolicyJsonContext.Default.PolicyDecisionRequest, TestContext.Current.CancellationToken);
        Assert.Equal(expected, response.StatusCode);
    }

    [Fact]
    public async Task Policy_decide_rejects_a_malformed_body()
    {
        using var client = Client(serviceKey: PolicyServiceFactory.ServiceKey);
        var ct = TestContext.Current.CancellationToken;
        Assert.Equal(HttpStatusCode.BadRequest, (await client.PostAsync("/api/policy/decide", Json("""{"input":{"tenant":"a"}}"""), ct)).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await client.PostAsync("/api/policy/decide", Json("null"), ct)).StatusCode);
    }
}

/// <summary>The service without OPA: built-in engine for everyone, and it says so.</summary>
public sealed class WithoutOpaTests(PolicyServiceFactoryWithoutOpa factory) : IClassFixture<PolicyServiceFactoryWithoutOpa>
{
    [Fact]
    public async Task Health_says_built_in_and_opa_not_configured()
    {
        using var client = factory.CreateClient();
        var ct = TestContext.Current.CancellationToken;
        Assert.Equal("""{"status":"Healthy","engine":"built-in","opa":"not configured"}""", await client.GetStringAsync("/health", ct));
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/alive", ct)).StatusCode);
    }

    [Fact]
    public async Task Opa_tenants_are_decided_by_the_built_in_rules()
    {
        using var client = factory.CreateClient();
        client.DefaultRequestHeaders.Add(PolicyServiceAuth.ServiceKeyHeader, PolicyServiceFactory.ServiceKey);
        var response = await client.PostAsJsonAsync("/api/policy/decide",
            new PolicyDecisionRequest { Input = Inputs.Request(maxOutputTokens: 5000), Policy = new TenantPolicy { Engine = PolicyEngineKind.Opa, MaxOutputTokens = 100 } },
            PolicyJsonContext.Default.PolicyDecisionRequest, TestContext.Current.CancellationToken);
        var decision = (await response.Content.ReadFromJsonAsync(PolicyJsonContext.Default.PolicyDecision, TestContext.Current.CancellationToken))!;
        Assert.True(decision.Allow);
        Assert.Equal(PolicyEngineNames.BuiltIn, decision.Engine);
        Assert.Equal(100, decision.MaxOutputTokens);
    }

    [Fact]
    public async Task Opa_decide_refuses_to_answer_without_opa()
    {
        using var client = factory.CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", PolicyServiceFactory.AdminKey);
        var response = await client.PostAsync("/api/opa/decide", new StringContent("{}", Encoding.UTF8, "application/json"), TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
    }
}

/// <summary>Start-up refuses missing keys outside Development, and a malformed OPA configuration anywhere.</summary>
public sealed class StartupValidationTests
{
    [Fact]
    public void Keys_are_required_outside_development()
    {
        using var factory = new PolicyServiceFactory(environment: "Production", withKeys: false);
        var error = Assert.ThrowsAny<OptionsValidationException>(() => factory.CreateClient());
        Assert.Contains("Policy:AdminKey is required", error.Message);
        Assert.Contains("Policy:ServiceKey is required", error.Message);
    }

    [Fact]
    public async Task Development_has_well_known_local_keys()
    {
        await using var factory = new PolicyServiceFactory(withKeys: false);
        using var client = factory.CreateClient();
        client.DefaultRequestHeaders.Add(PolicyServiceAuth.ServiceKeyHeader, PolicyServiceAuth.DevelopmentServiceKey);
        var response = await client.PostAsJsonAsync("/api/policy/decide",
            new PolicyDecisionRequest { Input = Inputs.Request(), Policy = new TenantPolicy() },
            PolicyJsonContext.Default.PolicyDecisionRequest, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }
}
