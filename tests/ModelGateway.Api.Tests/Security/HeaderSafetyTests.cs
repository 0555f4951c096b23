using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using ModelGateway.Api.Tests.Support;

namespace ModelGateway.Api.Tests.Security;

/// <summary>The gateway with a provider key for the OpenAI-compatible provider and the hostile-headers alias.</summary>
public sealed class ProviderKeyGateway : GatewayFixture
{
    public const string ProviderKey = "sk-or-provider-headers-31c7a9";

    protected override IEnumerable<KeyValuePair<string, string?>> ExtraSettings => new Dictionary<string, string?>
    {
        ["Gateway:Providers:openrouter:ApiKey"] = ProviderKey,
        ["Gateway:Routes:hostile:Targets:0:Provider"] = "openrouter",
        ["Gateway:Routes:hostile:Targets:0:Model"] = "fault-hostile-headers",
    };
}

/// <summary>A browser origin allowed to call the gateway.</summary>
public sealed class CorsGateway : GatewayFixture
{
    public const string Origin = "https://app.example.com";

    protected override IEnumerable<KeyValuePair<string, string?>> ExtraSettings => new Dictionary<string, string?>
    {
        ["Cors:AllowedOrigins:0"] = Origin,
    };
}

/// <summary>
/// Headers both ways: the client's credentials and hop-by-hop headers never reach the provider, and the provider's headers
/// (cookies, CORS grants, auth challenges, redirects, a spoofed trace id, echoes of the provider key) never reach the client.
/// </summary>
public sealed class HeaderSafetyTests(ProviderKeyGateway fx) : IClassFixture<ProviderKeyGateway>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Hostile_upstream_headers_do_not_reach_the_client_and_client_credentials_do_not_reach_the_upstream(bool stream)
    {
        var marker = $"headers-{stream}-{Guid.NewGuid():N}";
        using var request = GatewayApp.Chat(new { model = "hostile", stream, messages = new[] { new { role = "user", content = marker } } });
        request.Headers.TryAddWithoutValidation("Connection", "keep-alive, X-Hop-Secret");
        request.Headers.TryAddWithoutValidation("X-Hop-Secret", "hop-by-hop-value");
        request.Headers.TryAddWithoutValidation("Proxy-Authorization", "Basic Y2xpZW50OnByb3h5");
        request.Headers.TryAddWithoutValidation("x-api-key", "sk-client-x-api-key-123");
        request.Headers.TryAddWithoutValidation("Cookie", "client-session=abc");
        request.Headers.TryAddWithoutValidation("TE", "trailers");
        using var response = await fx.Gateway.Client.SendAsync(request, Ct);
        var body = await response.Content.ReadAsStringAsync(Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        var headers = response.Headers.Concat(response.Content.Headers).ToDictionary(h => h.Key.ToLowerInvariant(), h => string.Join(",", h.Value));
        foreach (var name in (string[])["set-cookie", "access-control-allow-origin", "access-control-allow-credentials", "www-authenticate",
                     "proxy-authenticate", "location", "refresh", "strict-transport-security", "keep-alive",
                     "x-upstream-echo-authorization", "x-upstream-echo-api-key"])
        {
            Assert.False(headers.ContainsKey(name), $"{name}: {headers.GetValueOrDefault(name)}");
        }
        Assert.NotEqual("hostile-trace-id", headers["x-trace-id"]);
        Assert.Equal("DENY", headers["x-frame-options"]);
        Assert.Equal("default-src 'none'; frame-ancestors 'none'", headers["content-security-policy"]);
        Assert.DoesNotContain(ProviderKeyGateway.ProviderKey, body, StringComparison.Ordinal);
        Assert.DoesNotContain(headers.Values, v => v.Contains(ProviderKeyGateway.ProviderKey, StringComparison.Ordinal));

        // What the provider saw: its own key, none of the client's credentials or hop-by-hop headers.
        var all = await fx.Fake.Client.GetFromJsonAsync<JsonElement>("/_fake/requests", Ct);
        var seen = all.EnumerateArray().Single(r => r.GetProperty("body").ToString().Contains(marker, StringComparison.Ordinal))
            .GetProperty("headers").EnumerateObject().ToDictionary(p => p.Name.ToLowerInvariant(), p => p.Value.ToString());
        Assert.Equal("Bearer " + ProviderKeyGateway.ProviderKey, seen["authorization"]);
        foreach (var name in (string[])["x-hop-secret", "proxy-authorization", "x-api-key", "cookie", "te"])
        {
            Assert.False(seen.ContainsKey(name), $"upstream got {name}: {seen.GetValueOrDefault(name)}");
        }
        Assert.DoesNotContain(seen.Values, v => v.Contains(GatewayFixture.DevKey, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Without_configuration_no_CORS_header_is_sent_and_preflights_are_not_granted()
    {
        using var preflight = new HttpRequestMessage(HttpMethod.Options, "/v1/chat/completions");
        preflight.Headers.Add("Origin", "https://evil.example");
        preflight.Headers.Add("Access-Control-Request-Method", "POST");
        preflight.Headers.Add("Access-Control-Request-Headers", "authorization,content-type");
        using var answer = await fx.Gateway.Client.SendAsync(preflight, Ct);
        Assert.False(answer.Headers.Contains("Access-Control-Allow-Origin"));
        Assert.False(answer.Headers.Contains("Access-Control-Allow-Methods"));

        using var get = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        get.Headers.Add("Origin", "https://evil.example");
        get.Headers.Authorization = new("Bearer", GatewayFixture.DevKey);
        using var response = await fx.Gateway.Client.SendAsync(get, Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.False(response.Headers.Contains("Access-Control-Allow-Origin"));
    }
}

public sealed class CorsConfiguredTests(CorsGateway fx) : IClassFixture<CorsGateway>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData(CorsGateway.Origin, true)]
    [InlineData("https://evil.example", false)]
    [InlineData("https://app.example.com.evil.example", false)]
    public async Task Configured_origins_get_CORS_grants_and_others_do_not(string origin, bool allowed)
    {
        using var preflight = new HttpRequestMessage(HttpMethod.Options, "/v1/chat/completions");
        preflight.Headers.Add("Origin", origin);
        preflight.Headers.Add("Access-Control-Request-Method", "POST");
        preflight.Headers.Add("Access-Control-Request-Headers", "authorization,content-type");
        using var answer = await fx.Gateway.Client.SendAsync(preflight, Ct);
        Assert.Equal(allowed, answer.Headers.TryGetValues("Access-Control-Allow-Origin", out var granted) && granted.Single() == origin);

        using var get = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        get.Headers.Add("Origin", origin);
        get.Headers.Authorization = new("Bearer", GatewayFixture.DevKey);
        using var response = await fx.Gateway.Client.SendAsync(get, Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(allowed, response.Headers.TryGetValues("Access-Control-Allow-Origin", out var values) && values.Single() == origin);
        Assert.False(response.Headers.Contains("Access-Control-Allow-Credentials"));
        if (allowed)
        {
            Assert.Contains("x-trace-id", string.Join(",", response.Headers.GetValues("Access-Control-Expose-Headers")), StringComparison.OrdinalIgnoreCase);
        }
    }
}
