using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using ModelGateway.Api.Tests.Support;

namespace ModelGateway.Api.Tests.Budgets;

public sealed class AdminFixture : GatewayFixture
{
    protected override IEnumerable<KeyValuePair<string, string?>> ExtraSettings => new Dictionary<string, string?>
    {
        ["Tenancy:Seed:1:Id"] = "capped",
        ["Tenancy:Seed:1:ApiKeys:0"] = "sk-capped-0123456789",
        ["Tenancy:Seed:1:MaxUsdPerRequest"] = "0.000001",
    };
}

/// <summary>The admin API and the read endpoints: admin-only writes, tenant isolation, key revocation and expiry.</summary>
public sealed class AdminApiTests(AdminFixture fx) : IClassFixture<AdminFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task The_admin_api_refuses_tenant_keys_and_missing_keys()
    {
        Assert.Equal(HttpStatusCode.Forbidden, (await SendAsync(HttpMethod.Get, "/api/admin/tenants", GatewayFixture.DevKey)).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await SendAsync(HttpMethod.Post, "/api/admin/tenants", GatewayFixture.DevKey, new { id = "x" })).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await SendAsync(HttpMethod.Get, "/api/admin/tenants", null)).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await SendAsync(HttpMethod.Get, "/api/admin/tenants", "sk-admin-localX")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(HttpMethod.Get, "/api/admin/tenants", GatewayFixture.AdminKey)).StatusCode);
    }

    [Fact]
    public async Task A_tenant_is_created_given_a_key_that_works_once_shown_and_revocation_refuses_it_at_once()
    {
        var created = await SendAsync(HttpMethod.Post, "/api/admin/tenants", GatewayFixture.AdminKey,
            new { id = "acme", name = "Acme", budget_usd = 5, budget_period = "monthly", requests_per_minute = 100 });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var tenant = await created.Content.ReadFromJsonAsync<JsonElement>(Ct);
        Assert.Equal(5m, tenant.GetProperty("budget_usd").GetDecimal());
        Assert.Equal(HttpStatusCode.Conflict, (await SendAsync(HttpMethod.Post, "/api/admin/tenants", GatewayFixture.AdminKey, new { id = "acme" })).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest,
            (await SendAsync(HttpMethod.Post, "/api/admin/tenants", GatewayFixture.AdminKey, new { id = "bad{id}" })).StatusCode);

        var issued = await (await SendAsync(HttpMethod.Post, "/api/admin/tenants/acme/keys", GatewayFixture.AdminKey)).Content.ReadFromJsonAsync<JsonElement>(Ct);
        var key = issued.GetProperty("key").GetString()!;
        var keyId = issued.GetProperty("id").GetString()!;
        Assert.StartsWith("sk-mg-", key);
        Assert.Equal(HttpStatusCode.OK, (await ChatAsync(key)).StatusCode);

        // Listing shows the prefix, never the key.
        var keys = await (await SendAsync(HttpMethod.Get, "/api/admin/tenants/acme/keys", GatewayFixture.AdminKey)).Content.ReadAsStringAsync(Ct);
        Assert.DoesNotContain(key, keys);

        var patched = await SendAsync(HttpMethod.Patch, "/api/admin/tenants/acme", GatewayFixture.AdminKey, new { budget_usd = (decimal?)null, tokens_per_minute = 5000 });
        Assert.Equal(HttpStatusCode.OK, patched.StatusCode);
        var after = await patched.Content.ReadFromJsonAsync<JsonElement>(Ct);
        Assert.Equal(JsonValueKind.Null, after.GetProperty("budget_usd").ValueKind);
        Assert.Equal(5000, after.GetProperty("tokens_per_minute").GetInt32());

        Assert.Equal(HttpStatusCode.NoContent, (await SendAsync(HttpMethod.Delete, $"/api/admin/tenants/acme/keys/{keyId}", GatewayFixture.AdminKey)).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await ChatAsync(key)).StatusCode);

        Assert.Equal(HttpStatusCode.NoContent, (await SendAsync(HttpMethod.Post, "/api/admin/tenants/acme/spend/reset", GatewayFixture.AdminKey)).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await SendAsync(HttpMethod.Delete, "/api/admin/tenants/acme", GatewayFixture.AdminKey)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await SendAsync(HttpMethod.Get, "/api/admin/tenants/acme", GatewayFixture.AdminKey)).StatusCode);
    }

    [Fact]
    public async Task An_expired_key_is_refused()
    {
        await SendAsync(HttpMethod.Post, "/api/admin/tenants", GatewayFixture.AdminKey, new { id = "shortlived" });
        var issued = await (await SendAsync(HttpMethod.Post, "/api/admin/tenants/shortlived/keys", GatewayFixture.AdminKey,
            new { expires_at = DateTimeOffset.UtcNow.AddSeconds(1).ToString("O") })).Content.ReadFromJsonAsync<JsonElement>(Ct);
        await Task.Delay(1500, Ct);
        Assert.Equal(HttpStatusCode.Unauthorized, (await ChatAsync(issued.GetProperty("key").GetString()!)).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await SendAsync(HttpMethod.Post, "/api/admin/tenants/shortlived/keys", GatewayFixture.AdminKey,
            new { expires_at = "2001-01-01T00:00:00Z" })).StatusCode);
    }

    [Fact]
    public async Task A_tenant_key_reads_only_its_own_tenant_on_every_read_endpoint()
    {
        Assert.Equal(HttpStatusCode.OK, (await ChatAsync(GatewayFixture.DevKey)).StatusCode);
        await Task.Delay(600, Ct); // the ledger writer's flush interval

        var list = await GetJsonAsync("/api/tenants", GatewayFixture.DevKey);
        Assert.Equal(["dev"], list.EnumerateArray().Select(t => t.GetProperty("id").GetString()));
        Assert.Equal(HttpStatusCode.NotFound, (await SendAsync(HttpMethod.Get, "/api/tenants/capped", GatewayFixture.DevKey)).StatusCode);
        var own = await GetJsonAsync("/api/tenants/dev?limit=1", GatewayFixture.DevKey);
        Assert.Single(own.GetProperty("recent_requests").EnumerateArray());
        Assert.True(own.GetProperty("tokens_in").GetInt64() > 0);

        var all = await GetJsonAsync("/api/tenants", GatewayFixture.AdminKey);
        Assert.Contains("capped", all.EnumerateArray().Select(t => t.GetProperty("id").GetString()));
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(HttpMethod.Get, "/api/tenants/capped", GatewayFixture.AdminKey)).StatusCode);

        var devStats = await GetJsonAsync("/api/stats", GatewayFixture.DevKey);
        var cappedStats = await GetJsonAsync("/api/stats", "sk-capped-0123456789");
        Assert.True(devStats.GetProperty("requests").GetInt64() >= 1);
        Assert.Equal(0, cappedStats.GetProperty("requests").GetInt64());
        Assert.True(devStats.GetProperty("by_model").TryGetProperty("chat-default", out _));
        Assert.True(devStats.GetProperty("by_status").GetProperty("ok").GetInt64() >= 1);
        Assert.Equal(HttpStatusCode.Unauthorized, (await SendAsync(HttpMethod.Get, "/api/stats", null)).StatusCode);
    }

    [Fact]
    public async Task A_worst_case_above_the_per_request_cap_is_refused_before_anything_else()
    {
        using var response = await fx.Gateway.SendAsync(GatewayApp.Chat(
            new { model = "chat-default", max_tokens = 100, messages = new[] { new { role = "user", content = "hi" } } }, "sk-capped-0123456789"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = (await GatewayApp.ReadJsonAsync(response)).GetProperty("error");
        Assert.Equal("request_cost_limit_exceeded", error.GetProperty("code").GetString());
        Assert.Equal("max_tokens", error.GetProperty("param").GetString());
    }

    private async Task<HttpResponseMessage> ChatAsync(string key)
    {
        var response = await fx.Gateway.SendAsync(GatewayApp.Chat(
            new { model = "chat-default", messages = new[] { new { role = "user", content = "hi" } } }, key));
        await response.Content.LoadIntoBufferAsync(Ct);
        return response;
    }

    private async Task<JsonElement> GetJsonAsync(string path, string key)
    {
        using var response = await SendAsync(HttpMethod.Get, path, key);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await response.Content.ReadFromJsonAsync<JsonElement>(Ct);
    }

    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, string? key, object? body = null)
    {
        using var request = new HttpRequestMessage(method, path);
        if (key is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }
        if (body is not null)
        {
            request.Content = JsonContent.Create(body);
        }
        var response = await fx.Gateway.Client.SendAsync(request, Ct);
        await response.Content.LoadIntoBufferAsync(Ct);
        return response;
    }
}

public sealed class FloodFixture : GatewayFixture
{
    protected override IEnumerable<KeyValuePair<string, string?>> ExtraSettings => new Dictionary<string, string?>
    {
        ["FloodGuard:PermitsPerMinute"] = "20",
    };
}

public sealed class FloodGuardTests(FloodFixture fx) : IClassFixture<FloodFixture>
{
    [Fact]
    public async Task Requests_without_a_valid_key_are_limited_per_client_ip_while_known_keys_are_not()
    {
        // Warm the cache for the dev key: a key this replica knows is limited by its tenant, not by the IP guard.
        using (var warm = await fx.Gateway.SendAsync(GatewayApp.Chat(new { model = "chat-default", messages = new[] { new { role = "user", content = "hi" } } })))
        {
            Assert.Equal(HttpStatusCode.OK, warm.StatusCode);
        }
        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 30; i++)
        {
            using var response = await fx.Gateway.SendAsync(GatewayApp.Chat(new { model = "chat-default", messages = Array.Empty<object>() }, $"sk-wrong-{i}"));
            statuses.Add(response.StatusCode);
        }
        Assert.Contains(HttpStatusCode.Unauthorized, statuses);
        Assert.Equal((HttpStatusCode)429, statuses[^1]);
        Assert.True(statuses.Count(s => s == HttpStatusCode.Unauthorized) <= 19);
        using var known = await fx.Gateway.SendAsync(GatewayApp.Chat(new { model = "chat-default", messages = new[] { new { role = "user", content = "hi" } } }));
        Assert.Equal(HttpStatusCode.OK, known.StatusCode);
    }
}
