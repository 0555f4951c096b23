using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using ModelGateway.Api.Tests.Support;

namespace ModelGateway.Api.Tests.Security;

/// <summary>Two tenants besides <c>dev</c>: alice (the attacker) and bob (the victim).</summary>
public sealed class TwoTenantsGateway : GatewayFixture
{
    public const string AliceKey = "sk-alice-0123456789abcdef";
    public const string BobKey = "sk-bob-0123456789abcdefgh";

    protected override IEnumerable<KeyValuePair<string, string?>> ExtraSettings => new Dictionary<string, string?>
    {
        ["Tenancy:Seed:1:Id"] = "alice",
        ["Tenancy:Seed:1:ApiKeys:0"] = AliceKey,
        ["Tenancy:Seed:2:Id"] = "bob",
        ["Tenancy:Seed:2:ApiKeys:0"] = BobKey,
        ["Tenancy:Seed:2:BudgetUsd"] = "5",
    };
}

/// <summary>
/// Every endpoint the Api maps, called with another tenant's key: nothing of bob's can be read or changed with alice's key.
/// The list of endpoints comes from the running app, so a new endpoint without a case here fails the test.
/// </summary>
public sealed class TenantIsolationTests(TwoTenantsGateway fx) : IClassFixture<TwoTenantsGateway>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private sealed record Case(string Method, string Pattern, string Path, string? Body, Action<int, string> Check);

    [Fact]
    public async Task A_tenant_key_cannot_read_or_change_another_tenants_data_through_any_endpoint()
    {
        // Bob has history: a request (ledger row and trace).
        using (var r = await SendAsync(HttpMethod.Post, "/v1/chat/completions", TwoTenantsGateway.BobKey,
                   """{"model":"chat-default","messages":[{"role":"user","content":"bob's secret prompt"}]}"""))
        {
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        }
        await Task.Delay(600, Ct); // ledger and trace writers flush
        var bobKeyId = JsonDocument.Parse(await GetAsync("/api/admin/tenants/bob/keys", GatewayFixture.AdminKey)).RootElement[0].GetProperty("id").GetString()!;
        var bobTrace = JsonDocument.Parse(await GetAsync("/api/traces?tenant=bob", GatewayFixture.AdminKey)).RootElement[0].GetProperty("id").GetString()!;
        var bobBefore = await GetAsync("/api/admin/tenants/bob", GatewayFixture.AdminKey);

        static void Forbidden(int status, string body) => Assert.Equal(403, status);
        static void NotFound(int status, string body) => Assert.Equal(404, status);
        static void NoBob(int status, string body)
        {
            Assert.Equal(200, status);
            Assert.DoesNotContain("bob", body, StringComparison.Ordinal);
        }
        var cases = new List<Case>
        {
            new("GET", "/api/admin/tenants", "/api/admin/tenants", null, Forbidden),
            new("POST", "/api/admin/tenants", "/api/admin/tenants", """{"id":"bob"}""", Forbidden),
            new("GET", "/api/admin/tenants/{id}", "/api/admin/tenants/bob", null, Forbidden),
            new("PATCH", "/api/admin/tenants/{id}", "/api/admin/tenants/bob", """{"budget_usd":0}""", Forbidden),
            new("DELETE", "/api/admin/tenants/{id}", "/api/admin/tenants/bob", null, Forbidden),
            new("GET", "/api/admin/tenants/{id}/keys", "/api/admin/tenants/bob/keys", null, Forbidden),
            new("POST", "/api/admin/tenants/{id}/keys", "/api/admin/tenants/bob/keys", "{}", Forbidden),
            new("DELETE", "/api/admin/tenants/{id}/keys/{keyId}", $"/api/admin/tenants/bob/keys/{bobKeyId}", null, Forbidden),
            new("POST", "/api/admin/tenants/{id}/spend/reset", "/api/admin/tenants/bob/spend/reset", null, Forbidden),
            new("GET", "/api/tenants", "/api/tenants", null, NoBob),
            new("GET", "/api/tenants/{id}", "/api/tenants/bob", null, NotFound),
            new("GET", "/api/stats", "/api/stats", null, NoBob),
            new("GET", "/api/traces", "/api/traces?tenant=bob", null, (s, b) => { Assert.Equal(200, s); Assert.Equal("[]", b.Trim()); }),
            new("GET", "/api/traces/{id}", $"/api/traces/{bobTrace}", null, NotFound),
            new("GET", "/v1/models", "/v1/models", null, NoBob),
            new("POST", "/v1/chat/completions", "/v1/chat/completions",
                """{"model":"chat-default","tenant":"bob","messages":[{"role":"user","content":"bill bob"}]}""",
                (s, b) => { Assert.Equal(403, s); Assert.Contains("tenant_mismatch", b, StringComparison.Ordinal); }),
            new("GET", "/health", "/health", null, NoBob),
            new("*", "/alive", "/alive", null, NoBob),
            // Forwarded to services that authenticate the request themselves; not configured in this fixture: 503.
            new("*", "/realtime/offer", "/realtime/offer", "{}", (s, _) => Assert.Equal(503, s)),
            new("*", "/realtime/ice-servers", "/realtime/ice-servers", null, (s, _) => Assert.Equal(503, s)),
            new("*", "/api/opa/decide", "/api/opa/decide", "{}", (s, _) => Assert.Equal(503, s)),
        };

        // Every mapped endpoint has a case.
        var mapped = fx.Gateway.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .Select(e => (Methods: e.Metadata.GetMetadata<HttpMethodMetadata>()?.HttpMethods ?? ["*"], Pattern: "/" + e.RoutePattern.RawText!.TrimStart('/')))
            .SelectMany(e => e.Methods.Select(m => $"{m} {e.Pattern}")).Distinct().ToList();
        var covered = cases.Select(c => $"{c.Method} {c.Pattern}").ToHashSet();
        var uncovered = mapped.Where(m => !covered.Contains(m)).ToList();
        Assert.True(uncovered.Count == 0, "endpoints without an isolation case: " + string.Join(", ", uncovered));
        TestContext.Current.TestOutputHelper?.WriteLine($"{mapped.Count} mapped endpoints, {cases.Count} called with another tenant's key");

        foreach (var c in cases)
        {
            using var response = await SendAsync(new HttpMethod(c.Method == "*" ? (c.Body is null ? "GET" : "POST") : c.Method), c.Path,
                TwoTenantsGateway.AliceKey, c.Body);
            var body = await response.Content.ReadAsStringAsync(Ct);
            try
            {
                c.Check((int)response.StatusCode, body);
            }
            catch (Exception ex)
            {
                throw new Xunit.Sdk.XunitException($"{c.Method} {c.Path}: HTTP {(int)response.StatusCode} {body}\n{ex.Message}");
            }
        }

        // Bob is untouched: same tenant record, key not revoked, no request billed to him by alice.
        await Task.Delay(600, Ct);
        Assert.Equal(Normalise(bobBefore), Normalise(await GetAsync("/api/admin/tenants/bob", GatewayFixture.AdminKey)));
        using var bobStill = await SendAsync(HttpMethod.Get, "/v1/models", TwoTenantsGateway.BobKey, null);
        Assert.Equal(HttpStatusCode.OK, bobStill.StatusCode);
    }

    [Fact]
    public async Task Admin_endpoints_need_the_admin_key()
    {
        foreach (var (key, status) in new (string?, int)[] { (null, 401), ("sk-not-a-key-000000000", 401), (TwoTenantsGateway.AliceKey, 403),
                     (GatewayFixture.AdminKey + "0", 401), (GatewayFixture.AdminKey, 200) })
        {
            using var response = await SendAsync(HttpMethod.Get, "/api/admin/tenants", key, null);
            Assert.Equal(status, (int)response.StatusCode);
        }
    }

    private static string Normalise(string json)
    {
        // Last-used timestamps may move with bob's own use; compare everything else.
        var node = System.Text.Json.Nodes.JsonNode.Parse(json)!.AsObject();
        if (node["keys"] is System.Text.Json.Nodes.JsonArray keys)
        {
            foreach (var k in keys)
            {
                k!.AsObject().Remove("last_used_at");
            }
        }
        return node.ToJsonString();
    }

    private async Task<string> GetAsync(string path, string key)
    {
        using var response = await SendAsync(HttpMethod.Get, path, key, null);
        var body = await response.Content.ReadAsStringAsync(Ct);
        Assert.True(response.IsSuccessStatusCode, $"{path}: {(int)response.StatusCode} {body}");
        return body;
    }

    private Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, string? key, string? body)
    {
        var request = new HttpRequestMessage(method, path);
        if (body is not null)
        {
            request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        }
        if (key is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }
        return fx.Gateway.Client.SendAsync(request, Ct);
    }
}
