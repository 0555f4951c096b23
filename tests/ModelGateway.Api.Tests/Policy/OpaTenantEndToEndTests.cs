extern alias PolicyService;

using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc.Testing;
using ModelGateway.Api.Tests.Support;
using ModelGateway.Testing;

namespace ModelGateway.Api.Tests.Policy;

/// <summary>
/// A tenant in OPA mode, end to end: Api → the real Policy service (in process, on Kestrel) → an OPA stand-in that
/// answers OPA's Data API (<c>POST /v1/data/gateway/decision</c> → <c>{"result":{...}}</c>, as documented for OPA's
/// REST API; no OPA binary runs on these machines). The deny reasons written by "OPA" must reach the client.
/// </summary>
public sealed class OpaTenantFixture : GatewayFixture
{
    public const string OpaTenantKey = "sk-opa-tenant-0123456789";

    private WebApplication? _opa;
    private PolicyApp? _policy;
    private string _policyUrl = "";

    public int OpaCalls;

    /// <summary>The <c>traceparent</c> of each decision request OPA received (through the Api and the Policy service).</summary>
    public System.Collections.Concurrent.ConcurrentQueue<string> OpaTraceparents { get; } = new();

    protected override IEnumerable<KeyValuePair<string, string?>> ExtraSettings => new Dictionary<string, string?>
    {
        ["PolicyClient:BaseAddress"] = _policyUrl,
        // The production default (1 s) is too tight for a JIT-cold first call on a loaded 2-core CI machine.
        ["PolicyClient:Timeout"] = "00:00:05",
        ["Tenancy:Seed:1:Id"] = "opa-tenant",
        ["Tenancy:Seed:1:ApiKeys:0"] = OpaTenantKey,
        ["Tenancy:Seed:1:Policy:Engine"] = "Opa",
    };

    public override async ValueTask InitializeAsync()
    {
        var opaPort = FreePort.Get();
        var opaUrl = $"http://127.0.0.1:{opaPort}";
        // Built under the assembly's start gate: a factory starting meanwhile could take this host for its own (see TestHostStart).
        lock (TestHostStart.Gate)
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.WebHost.ConfigureKestrel(k => k.Listen(System.Net.IPAddress.Loopback, opaPort));
            _opa = builder.Build();
        }
        _opa.MapPost("/v1/data/gateway/decision", async (HttpContext ctx) =>
        {
            Interlocked.Increment(ref OpaCalls);
            OpaTraceparents.Enqueue(ctx.Request.Headers["traceparent"].ToString());
            var input = await JsonDocument.ParseAsync(ctx.Request.Body);
            var model = input.RootElement.GetProperty("input").GetProperty("model").GetString();
            ctx.Response.ContentType = "application/json";
            await ctx.Response.WriteAsync(model == "chat-local"
                ? """{"result":{"allow":false,"reasons":["opa: local models are not allowed for this tenant"]}}"""
                : """{"result":{"allow":true,"reasons":[]}}""");
        });
        _opa.MapGet("/health", () => Results.Json(new { }));
        await _opa.StartAsync();

        _policy = new PolicyApp(opaUrl);
        _policyUrl = _policy.Client.BaseAddress!.ToString();
        await base.InitializeAsync();
    }

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        if (_policy is not null)
        {
            await _policy.DisposeAsync();
        }
        if (_opa is not null)
        {
            await _opa.DisposeAsync();
        }
    }

    private sealed class PolicyApp : WebApplicationFactory<PolicyService::Program>
    {
        private readonly string _opaUrl;
        private HttpClient? _client;

        public PolicyApp(string opaUrl)
        {
            _opaUrl = opaUrl;
            UseKestrel(k => k.Listen(System.Net.IPAddress.Loopback, 0)); // not UseKestrel(0): it races Kestrel's bind (dotnet/aspnetcore#67714)
        }

        public HttpClient Client
        {
            get
            {
                lock (TestHostStart.Gate)
                {
                    return _client ??= CreateClient();
                }
            }
        }

        protected override void ConfigureWebHost(IWebHostBuilder builder)
        {
            builder.UseEnvironment("Development");
            builder.UseSetting("Policy:Opa:Url", _opaUrl);
            builder.UseSetting("Policy:Opa:Timeout", "00:00:02");
        }
    }
}

public sealed class OpaTenantEndToEndTests(OpaTenantFixture fx) : IClassFixture<OpaTenantFixture>
{
    [Fact]
    public async Task An_opa_tenant_is_denied_through_the_api_with_opas_reasons_and_nothing_reaches_the_provider()
    {
        var before = await UpstreamRequestsAsync();
        var opaBefore = fx.OpaCalls;
        using var response = await fx.Gateway.SendAsync(GatewayApp.Chat(
            new { model = "chat-local", messages = new[] { new { role = "user", content = "hi" } } }, OpaTenantFixture.OpaTenantKey));
        var json = await GatewayApp.ReadJsonAsync(response);
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Equal("policy_denied", json.GetProperty("error").GetProperty("code").GetString());
        Assert.Contains("opa: local models are not allowed", json.GetProperty("error").GetProperty("message").GetString());
        Assert.True(fx.OpaCalls > opaBefore, "the decision came from OPA");
        Assert.Equal(before, await UpstreamRequestsAsync());
    }

    [Fact]
    public async Task An_opa_tenant_allowed_by_opa_is_served()
    {
        using var response = await fx.Gateway.SendAsync(GatewayApp.Chat(
            new { model = "chat-default", messages = new[] { new { role = "user", content = "hi" } } }, OpaTenantFixture.OpaTenantKey));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task The_clients_trace_context_flows_through_the_api_and_the_policy_service_to_opa()
    {
        var traceId = System.Diagnostics.ActivityTraceId.CreateRandom().ToHexString();
        // A prompt of its own, so no cached decision stands in for OPA's.
        var request = GatewayApp.Chat(new { model = "chat-default", messages = new[] { new { role = "user", content = "trace " + traceId } } }, OpaTenantFixture.OpaTenantKey);
        request.Headers.Add("traceparent", $"00-{traceId}-{System.Diagnostics.ActivitySpanId.CreateRandom()}-01");
        // A client that sends the header as set (the test process's own HTTP instrumentation would replace it).
        using var client = new HttpClient(new SocketsHttpHandler { ActivityHeadersPropagator = null }) { BaseAddress = fx.Gateway.Client.BaseAddress };
        using var response = await client.SendAsync(request, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(traceId, response.Headers.GetValues("x-trace-id").Single());
        // Api → Policy → OPA: the decision request carries the client's trace id, with a span id of its own.
        Assert.Contains(fx.OpaTraceparents, tp => tp.StartsWith($"00-{traceId}-", StringComparison.Ordinal));
    }

    private async Task<int> UpstreamRequestsAsync()
    {
        var stats = await fx.Fake.Client.GetFromJsonAsync<JsonElement>("/_fake/stats", TestContext.Current.CancellationToken);
        return stats.GetProperty("requests").GetInt32();
    }
}
