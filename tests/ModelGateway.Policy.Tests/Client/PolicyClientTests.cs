using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Http;
using Microsoft.Extensions.Options;
using ModelGateway.Policy.Rules;
using ModelGateway.Policy.Rules.Client;
using ModelGateway.Policy.Tests.Support;

namespace ModelGateway.Policy.Tests.Client;

/// <summary>
/// The Api's side: <c>AddPolicyClient</c> gives an <see cref="IPolicyEngine"/> that decides built-in tenants
/// in process and asks the Policy service (here in memory, in front of a fake OPA) for OPA tenants.
/// </summary>
public sealed class PolicyClientTests : FakeOpaTestBase
{
    private IHost ApiHost(string serviceKey = PolicyServiceFactory.ServiceKey, bool reachable = true, string environment = "Production")
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { EnvironmentName = environment });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["PolicyClient:BaseAddress"] = "http://policy.test",
            ["PolicyClient:ServiceKey"] = serviceKey,
        });
        builder.AddPolicyClient();
        // Registered after AddPolicyClient so it runs after Refit's own handler configuration.
        builder.Services.ConfigureAll<HttpClientFactoryOptions>(o => o.HttpMessageHandlerBuilderActions.Add(handlers =>
            handlers.PrimaryHandler = reachable ? Service.Server.CreateHandler() : new RefusingHandler()));

        return builder.Build();
    }

    private sealed class RefusingHandler : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
            => throw new HttpRequestException("Connection refused (policy:443)");
    }

    [Fact]
    public async Task Opa_tenants_are_decided_by_the_policy_service()
    {
        _ = Service.Server; // start the service
        Opa.Enqueue(FakeOpaServer.Result("""{"allow":false,"reasons":["from opa"]}"""));
        using var host = ApiHost();
        var engine = host.Services.GetRequiredService<IPolicyEngine>();

        var decision = await engine.DecideAsync(Inputs.Request(), new TenantPolicy { Engine = PolicyEngineKind.Opa }, TestContext.Current.CancellationToken);

        Assert.False(decision.Allow);
        Assert.Equal(["from opa"], decision.Reasons);
        Assert.Equal(PolicyEngineNames.Opa, decision.Engine);
        Assert.Single(Opa.Requests);
    }

    [Fact]
    public async Task Built_in_tenants_are_decided_in_process()
    {
        using var host = ApiHost(reachable: false);
        var engine = host.Services.GetRequiredService<IPolicyEngine>();

        var decision = await engine.DecideAsync(Inputs.Request(maxOutputTokens: 999), new TenantPolicy { MaxOutputTokens = 10 }, TestContext.Current.CancellationToken);

        Assert.True(decision.Allow);
        Assert.Equal(10, decision.MaxOutputTokens);
        Assert.Equal(PolicyEngineNames.BuiltIn, decision.Engine);
    }

    [Fact]
    public async Task Unreachable_service_fails_closed_or_open_per_tenant()
    {
        using var host = ApiHost(reachable: false);
        var engine = host.Services.GetRequiredService<IPolicyEngine>();
        var ct = TestContext.Current.CancellationToken;

        var closed = await engine.DecideAsync(Inputs.Request(), new TenantPolicy { Engine = PolicyEngineKind.Opa }, ct);
        var open = await engine.DecideAsync(Inputs.Request(), new TenantPolicy { Engine = PolicyEngineKind.Opa, FailOpen = true }, ct);

        Assert.False(closed.Allow);
        Assert.Equal("policy-service", closed.Engine);
        Assert.Contains("Connection refused", Assert.Single(closed.Reasons));
        Assert.True(open.Allow);
        Assert.True(open.FailOpen);
    }

    [Fact]
    public async Task Wrong_service_key_fails_closed()
    {
        _ = Service.Server;
        using var host = ApiHost(serviceKey: "not-the-key");
        var engine = host.Services.GetRequiredService<IPolicyEngine>();

        var decision = await engine.DecideAsync(Inputs.Request(), new TenantPolicy { Engine = PolicyEngineKind.Opa }, TestContext.Current.CancellationToken);

        Assert.False(decision.Allow);
        Assert.Contains("401", Assert.Single(decision.Reasons));
        Assert.Empty(Opa.Requests);
    }

    [Fact]
    public async Task Caller_cancellation_propagates()
    {
        using var host = ApiHost();
        var engine = host.Services.GetRequiredService<IPolicyEngine>();
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
            await engine.DecideAsync(Inputs.Request(), new TenantPolicy { Engine = PolicyEngineKind.Opa }, cts.Token));
    }

    [Fact]
    public void Service_key_is_required_outside_development()
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { EnvironmentName = "Production" });
        builder.AddPolicyClient();
        using var host = builder.Build();

        var error = Assert.Throws<OptionsValidationException>(() => host.Services.GetRequiredService<IOptions<PolicyClientOptions>>().Value);
        Assert.Contains("PolicyClient:ServiceKey is required", error.Message);
    }

    [Fact]
    public void Development_defaults_to_the_local_service_key()
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { EnvironmentName = "Development" });
        builder.AddPolicyClient();
        using var host = builder.Build();

        var options = host.Services.GetRequiredService<IOptions<PolicyClientOptions>>().Value;
        Assert.Equal(PolicyServiceAuth.DevelopmentServiceKey, options.ServiceKey);
        Assert.Equal(new Uri("https+http://policy"), options.BaseAddress);
        Assert.Equal(TimeSpan.FromSeconds(1), options.Timeout);
    }
}
