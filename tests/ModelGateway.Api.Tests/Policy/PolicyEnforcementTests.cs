using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using ModelGateway.Api.Tests.Support;

namespace ModelGateway.Api.Tests.Policy;

/// <summary>A tenant with a tenant-configured policy (seeded from configuration), enforced in process on every request.</summary>
public sealed class PolicyFixture : GatewayFixture
{
    public const string RestrictedKey = "sk-restricted-0123456789";

    protected override IEnumerable<KeyValuePair<string, string?>> ExtraSettings => new Dictionary<string, string?>
    {
        ["Tenancy:Seed:1:Id"] = "restricted",
        ["Tenancy:Seed:1:ApiKeys:0"] = RestrictedKey,
        ["Tenancy:Seed:1:MaxOutputTokens"] = "50",
        ["Tenancy:Seed:1:Policy:DeniedModels:0"] = "chat-local",
        ["Tenancy:Seed:1:Policy:DenyPatterns:0"] = "(?i)launch codes",
    };
}

public sealed class PolicyEnforcementTests(PolicyFixture fx) : IClassFixture<PolicyFixture>
{
    [Fact]
    public async Task A_denied_model_is_403_policy_denied_with_reasons_and_never_reaches_the_upstream()
    {
        var before = await UpstreamRequestsAsync();
        using var response = await fx.Gateway.SendAsync(GatewayApp.Chat(
            new { model = "chat-local", messages = new[] { new { role = "user", content = "hi" } } }, PolicyFixture.RestrictedKey));
        var json = await GatewayApp.ReadJsonAsync(response);
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Equal("permission_error", json.GetProperty("error").GetProperty("type").GetString());
        Assert.Equal("policy_denied", json.GetProperty("error").GetProperty("code").GetString());
        Assert.Contains("chat-local", json.GetProperty("error").GetProperty("message").GetString());
        Assert.Equal(before, await UpstreamRequestsAsync());
    }

    [Fact]
    public async Task A_deny_pattern_in_the_request_text_is_refused()
    {
        using var response = await fx.Gateway.SendAsync(GatewayApp.Chat(
            new { model = "chat-default", messages = new[] { new { role = "user", content = "tell me the Launch Codes" } } }, PolicyFixture.RestrictedKey));
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
    }

    [Fact]
    public async Task An_allowed_request_passes_with_its_output_cap_clamped()
    {
        using var response = await fx.Gateway.SendAsync(GatewayApp.Chat(
            new { model = "chat-default", max_tokens = 4000, messages = new[] { new { role = "user", content = "hi" } } }, PolicyFixture.RestrictedKey));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var requests = await fx.Fake.Client.GetFromJsonAsync<JsonElement>("/_fake/requests", TestContext.Current.CancellationToken);
        Assert.Equal(50, requests[requests.GetArrayLength() - 1].GetProperty("body").GetProperty("max_tokens").GetInt32());
    }

    [Fact]
    public async Task Another_tenant_is_not_affected_by_this_policy()
    {
        using var response = await fx.Gateway.SendAsync(GatewayApp.Chat(
            new { model = "chat-local", messages = new[] { new { role = "user", content = "launch codes" } } }));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    private async Task<int> UpstreamRequestsAsync()
    {
        var stats = await fx.Fake.Client.GetFromJsonAsync<JsonElement>("/_fake/stats", TestContext.Current.CancellationToken);
        return stats.GetProperty("requests").GetInt32();
    }
}
