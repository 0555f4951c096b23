using ModelGateway.Deploy.Tests.Support;

namespace ModelGateway.Deploy.Tests;

/// <summary>
/// A service started in Production with none of its required settings stops at once with one message that names every
/// missing setting, instead of starting half-configured or failing one setting per restart.
/// </summary>
public sealed class ProductionStartupTests
{
    private static Task<(int ExitCode, string Output)> StartAsync(string project) =>
        Repository.RunDotnetAsync([Repository.ServiceDll(project)], TimeSpan.FromSeconds(30), new Dictionary<string, string>
        {
            ["ASPNETCORE_ENVIRONMENT"] = "Production",
            // Should a check ever be missing, the service must not take a well-known port on the test machine.
            ["ASPNETCORE_URLS"] = "http://127.0.0.1:0",
        }, workingDirectory: Path.GetDirectoryName(Repository.ServiceDll(project)));

    [Fact]
    public async Task The_api_lists_every_missing_setting_in_one_message()
    {
        var (exitCode, output) = await StartAsync("ModelGateway.Api");

        Assert.NotEqual(0, exitCode);
        Assert.Contains("ModelGateway.Api cannot start in the Production environment: 6 required setting(s) missing.", output, StringComparison.Ordinal);
        foreach (var setting in new[]
                 {
                     "Tenancy:AdminKey", "PolicyClient:ServiceKey", "ConnectionStrings:redis", "ConnectionStrings:postgres",
                     "Gateway:Providers:openrouter:ApiKey", "Gateway:Providers:anthropic:ApiKey",
                 })
        {
            Assert.Contains("  - " + setting + ":", output, StringComparison.Ordinal);
        }
        // llama.cpp servers run keyless; a missing key there is not an error.
        Assert.DoesNotContain("llamacpp:ApiKey", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_api_names_only_what_is_still_missing()
    {
        var (exitCode, output) = await Repository.RunDotnetAsync([Repository.ServiceDll("ModelGateway.Api")], TimeSpan.FromSeconds(30),
            new Dictionary<string, string>
            {
                ["ASPNETCORE_ENVIRONMENT"] = "Production",
                ["ASPNETCORE_URLS"] = "http://127.0.0.1:0",
                ["Tenancy__AdminKey"] = "an-admin-key-for-tests",
                ["PolicyClient__ServiceKey"] = "a-service-key",
                ["ConnectionStrings__redis"] = "127.0.0.1:1",
                ["ConnectionStrings__postgres"] = "Host=127.0.0.1;Port=1;Username=x;Database=y",
                ["Gateway__Providers__openrouter__ApiKey"] = "sk-or-test",
            }, workingDirectory: Path.GetDirectoryName(Repository.ServiceDll("ModelGateway.Api")));

        Assert.NotEqual(0, exitCode);
        Assert.Contains("1 required setting(s) missing.", output, StringComparison.Ordinal);
        Assert.Contains("  - Gateway:Providers:anthropic:ApiKey: the anthropic key, used by route(s) chat-anthropic", output, StringComparison.Ordinal);
        Assert.DoesNotContain("Tenancy:AdminKey", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_policy_service_lists_both_of_its_keys_in_one_message()
    {
        var (exitCode, output) = await StartAsync("ModelGateway.Policy");

        Assert.NotEqual(0, exitCode);
        // The host logs the failure and the runtime prints it again; each time it is one exception naming both keys.
        Assert.Contains(output.Split('\n'), line => line.Contains("OptionsValidationException", StringComparison.Ordinal)
            && line.Contains("Policy:AdminKey is required outside Development", StringComparison.Ordinal)
            && line.Contains("Policy:ServiceKey is required outside Development", StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_realtime_service_requires_the_address_browsers_reach_it_on()
    {
        var (exitCode, output) = await StartAsync("ModelGateway.Realtime");

        Assert.NotEqual(0, exitCode);
        Assert.Contains("Realtime:CandidateAddresses must name at least one address", output, StringComparison.Ordinal);
    }
}
