using System.Net.Http.Json;
using System.Text;
using ModelGateway.Policy.Rules;
using ModelGateway.Policy.Rules.Client;
using ModelGateway.Policy.Tests.Support;

namespace ModelGateway.Policy.Tests.Opa;

/// <summary>
/// Against a real OPA, when <c>OPA_URL</c> is set (e.g. <c>opa run --server --addr=127.0.0.1:8181</c>); skipped
/// otherwise. Loads policies/gateway.rego through OPA's Policy API, then runs every built-in case through the
/// Policy service and OPA: the shipped Rego must give the built-in engine's answers.
/// </summary>
public sealed class RealOpaTests
{
    private static readonly string? OpaUrl = Environment.GetEnvironmentVariable("OPA_URL");
    private static readonly SemaphoreSlim Loaded = new(1, 1);
    private static bool s_loaded;

    private static async Task LoadPolicyAsync(CancellationToken cancellationToken)
    {
        await Loaded.WaitAsync(cancellationToken);
        try
        {
            if (s_loaded)
            {
                return;
            }

            using var http = new HttpClient { BaseAddress = new Uri(OpaUrl!) };
            var rego = await File.ReadAllTextAsync(Path.Combine(AppContext.BaseDirectory, "policies", "gateway.rego"), cancellationToken);
            // Policy API: PUT /v1/policies/{id} with the module as text/plain.
            var response = await http.PutAsync("/v1/policies/gateway", new StringContent(rego, Encoding.UTF8, "text/plain"), cancellationToken);
            Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync(cancellationToken));
            s_loaded = true;
        }
        finally
        {
            Loaded.Release();
        }
    }

    [Fact]
    public async Task Shipped_rego_decides_like_the_built_in_engine()
    {
        if (string.IsNullOrEmpty(OpaUrl))
        {
            Assert.Skip("OPA_URL is not set: no real OPA to test against.");
        }

        var ct = TestContext.Current.CancellationToken;
        await LoadPolicyAsync(ct);
        await using var service = new PolicyServiceFactory(new Uri(OpaUrl));
        using var client = service.CreateClient();
        client.DefaultRequestHeaders.Add(PolicyServiceAuth.ServiceKeyHeader, PolicyServiceFactory.ServiceKey);

        var mismatches = new List<string>();
        foreach (var c in PolicyCases.All())
        {
            var response = await client.PostAsJsonAsync("/api/policy/decide",
                new PolicyDecisionRequest { Input = c.Input, Policy = c.Policy with { Engine = PolicyEngineKind.Opa } },
                PolicyJsonContext.Default.PolicyDecisionRequest, ct);
            var d = (await response.Content.ReadFromJsonAsync(PolicyJsonContext.Default.PolicyDecision, ct))!;
            if (d.Engine != PolicyEngineNames.Opa || d.Allow != c.Allow || !d.Reasons.SequenceEqual(c.Reasons) || d.MaxOutputTokens != c.MaxOutputTokens)
            {
                mismatches.Add($"{c.Name}: allow={d.Allow} reasons=[{string.Join("; ", d.Reasons)}] max={d.MaxOutputTokens} engine={d.Engine}");
            }
        }

        Assert.True(mismatches.Count == 0, string.Join(Environment.NewLine, mismatches));
    }
}
