using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using ModelGateway.Deploy.Tests.Support;

namespace ModelGateway.Deploy.Tests;

/// <summary>What azd deploys: every resource, how they reference each other, who is reachable from outside, and secrets.</summary>
public sealed partial class ManifestTests(ManifestFixture manifest) : IClassFixture<ManifestFixture>
{
    /// <summary>Every value a deployment must keep secret, and nothing else may carry them.</summary>
    private static readonly string[] SecretParameters =
    [
        "admin-key", "policy-service-key", "turn-secret", "openrouter-api-key", "anthropic-api-key",
        "postgres-server-password", "redis-password",
    ];

    [Theory]
    [InlineData("api", "project.v0")]
    [InlineData("policy", "project.v0")]
    [InlineData("realtime", "project.v0")]
    [InlineData("redis", "container.v0")]
    [InlineData("postgres-server", "container.v0")]
    [InlineData("postgres", "value.v0")]
    [InlineData("coturn", "container.v0")]
    [InlineData("opa", "container.v1")]
    public void Every_resource_is_in_the_manifest(string name, string type) => Assert.Equal(type, manifest.Type(name));

    [Fact]
    public void The_fake_upstream_is_not_deployed() => Assert.Null(manifest.Resources["fake-upstream"]);

    [Theory]
    [InlineData("api", "http", true)]
    [InlineData("realtime", "http", true)]
    [InlineData("coturn", "turn", true)]
    [InlineData("policy", "http", false)]
    [InlineData("opa", "http", false)]
    [InlineData("redis", "tcp", false)]
    [InlineData("postgres-server", "tcp", false)]
    public void Only_the_front_doors_are_external(string resource, string binding, bool external) =>
        Assert.Equal(external, ManifestFixture.IsExternal(manifest.Binding(resource, binding)));

    [Fact]
    public void The_api_is_http_on_its_container_port_and_realtime_signalling_is_http()
    {
        var api = manifest.Binding("api", "http");
        Assert.Equal("http", (string?)api["transport"]);
        Assert.Equal(8080, (int?)api["targetPort"]);
        Assert.Equal("http", (string?)manifest.Binding("realtime", "http")["transport"]);
    }

    [Theory]
    [InlineData("api")]
    [InlineData("policy")]
    [InlineData("realtime")]
    public void Services_run_as_Production(string service) => Assert.Equal("Production", manifest.Env(service, "ASPNETCORE_ENVIRONMENT"));

    /// <summary>The gateway's gen0 budget and malloc arenas as its image sets them (ContainerPropertiesTests): deployed and
    /// local runs alike.</summary>
    [Theory]
    [MemberData(nameof(ContainerPropertiesTests.GatewayRuntimeEnvironment), MemberType = typeof(ContainerPropertiesTests))]
    public void The_gateway_runs_with_its_runtime_environment(string name, string value) =>
        Assert.Equal(value, manifest.Env("api", name));

    [Theory]
    [InlineData("api", "ConnectionStrings__redis", "{redis.connectionString}")]
    [InlineData("api", "ConnectionStrings__postgres", "{postgres.connectionString}")]
    [InlineData("api", "services__policy__http__0", "{policy.bindings.http.url}")]
    [InlineData("api", "Realtime__BaseUrl", "{realtime.bindings.http.url}")]
    [InlineData("api", "Tenancy__AdminKey", "{admin-key.value}")]
    [InlineData("api", "PolicyClient__ServiceKey", "{policy-service-key.value}")]
    [InlineData("api", "Gateway__Providers__openrouter__ApiKey", "{openrouter-api-key.value}")]
    [InlineData("api", "Gateway__Providers__anthropic__ApiKey", "{anthropic-api-key.value}")]
    [InlineData("policy", "Policy__Opa__Url", "{opa.bindings.http.url}")]
    [InlineData("policy", "Policy__AdminKey", "{admin-key.value}")]
    [InlineData("policy", "Policy__ServiceKey", "{policy-service-key.value}")]
    [InlineData("realtime", "Realtime__ApiBaseUrl", "{api.bindings.http.url}")]
    [InlineData("realtime", "Realtime__Turn__Secret", "{turn-secret.value}")]
    [InlineData("realtime", "Realtime__Turn__Urls__0", "turn:{turn-host.value}:3478?transport=tcp")]
    [InlineData("realtime", "Realtime__Turn__Urls__1", "turns:{turn-host.value}:3478?transport=tcp")]
    [InlineData("realtime", "Realtime__CandidateAddresses__0", "{realtime-candidate-address.value}")]
    [InlineData("coturn", "TURN_SECRET", "{turn-secret.value}")]
    public void Services_are_wired_to_each_other_and_to_their_parameters(string resource, string key, string value) =>
        Assert.Equal(value, manifest.Env(resource, key));

    [Fact]
    public void Opa_runs_the_baked_policies_from_a_pinned_image()
    {
        var opa = manifest.Resource("opa");
        Assert.Equal(["run", "--server", "--addr=0.0.0.0:8181", "/policies"], opa["args"]!.AsArray().Select(a => (string)a!));
        Assert.Equal(8181, (int?)manifest.Binding("opa", "http")["targetPort"]);
        Assert.EndsWith("/policies", ((string)opa["build"]!["context"]!).TrimEnd('/'), StringComparison.Ordinal);

        var from = File.ReadAllLines(Repository.PathOf("policies", "Dockerfile")).Single(l => l.StartsWith("FROM ", StringComparison.Ordinal));
        Assert.Matches(@"^FROM docker\.io/openpolicyagent/opa:\d+\.\d+\.\d+(-static)?$", from);
        Assert.Contains("*_test.rego", File.ReadAllText(Repository.PathOf("policies", ".dockerignore")), StringComparison.Ordinal);
    }

    [Fact]
    public void Coturn_is_pinned_listens_on_tcp_and_reads_its_secret_from_the_environment()
    {
        var coturn = manifest.Resource("coturn");
        Assert.Matches(@"^coturn/coturn:\d+\.\d+\.\d+$", (string)coturn["image"]!);
        var turn = manifest.Binding("coturn", "turn");
        Assert.Equal("tcp", (string?)turn["transport"]);
        Assert.Equal(3478, (int?)turn["targetPort"]);

        var command = string.Join(' ', coturn["args"]!.AsArray().Select(a => (string)a!));
        Assert.Contains("--use-auth-secret", command, StringComparison.Ordinal);
        Assert.Contains("--static-auth-secret=\"$TURN_SECRET\"", command, StringComparison.Ordinal);
        Assert.Contains("--no-udp", command, StringComparison.Ordinal);
        Assert.DoesNotContain("{turn-secret", command, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("admin-key")]
    [InlineData("policy-service-key")]
    [InlineData("turn-secret")]
    [InlineData("openrouter-api-key")]
    [InlineData("anthropic-api-key")]
    [InlineData("postgres-server-password")]
    [InlineData("redis-password")]
    public void Every_secret_is_a_secret_parameter(string name)
    {
        var parameter = manifest.Resource(name);
        Assert.Equal("parameter.v0", (string?)parameter["type"]);
        Assert.True((bool?)parameter["inputs"]?["value"]?["secret"], $"{name} is not marked secret.");
        Assert.Null(parameter["inputs"]?["value"]?["default"]?["value"]); // a literal default would be a secret in the manifest
    }

    [Fact]
    public void Every_secret_looking_setting_comes_from_a_secret_parameter_or_a_connection_string()
    {
        var problems = new List<string>();
        foreach (var (name, node) in manifest.Resources)
        {
            if (node?["env"] is not JsonObject env)
            {
                continue;
            }
            foreach (var (key, valueNode) in env)
            {
                if (!SecretLooking().IsMatch(key))
                {
                    continue;
                }
                var value = (string?)valueNode ?? "";
                var references = Placeholder().Matches(value).Select(m => m.Groups[1].Value).ToList();
                var literal = Placeholder().Replace(value, "");
                var fromSecrets = references.Count > 0 && references.All(r =>
                    SecretParameters.Contains(r.Split('.')[0]) && r.EndsWith(".value", StringComparison.Ordinal)
                    || r.EndsWith(".connectionString", StringComparison.Ordinal));
                if (!fromSecrets || !LiteralIsHarmless(literal))
                {
                    problems.Add($"{name}: {key}={value}");
                }
            }
        }
        Assert.True(problems.Count == 0, "Settings that look secret but are not secret parameters:\n" + string.Join('\n', problems));
    }

    [Theory]
    [InlineData("sk-dev-local")]
    [InlineData("sk-admin-local")]
    [InlineData("sk-policy-local")]
    [InlineData("dev-turn-secret")]
    [InlineData("sk-ant-fake-upstream")]
    public void No_development_key_reaches_the_manifest(string developmentValue) =>
        Assert.DoesNotContain(developmentValue, manifest.Text, StringComparison.Ordinal);

    [Fact]
    public void Azd_is_pointed_at_the_AppHost()
    {
        var yaml = File.ReadAllText(Repository.PathOf("azure.yaml"));
        Assert.Contains("project: ./ModelGateway.AppHost/ModelGateway.AppHost.csproj", yaml, StringComparison.Ordinal);
        Assert.Contains("host: containerapp", yaml, StringComparison.Ordinal);
        Assert.Contains("language: dotnet", yaml, StringComparison.Ordinal);
    }

    /// <summary>What may be left of a secret setting once its references are removed: separators, never a value.</summary>
    private static bool LiteralIsHarmless(string literal) =>
        HarmlessLiteral().IsMatch(literal);

    [GeneratedRegex("(?i)(key|secret|password|token)")]
    private static partial Regex SecretLooking();

    [GeneratedRegex(@"\{([A-Za-z0-9_.-]+)\}")]
    private static partial Regex Placeholder();

    [GeneratedRegex(@"^[:/@;]*$")]
    private static partial Regex HarmlessLiteral();
}
