using System.Text.Json.Nodes;

namespace ModelGateway.Deploy.Tests.Support;

/// <summary>
/// The Aspire manifest that azd deploys from, generated once per run the way azd does it: the AppHost run in publish
/// mode (with its launch profile, so from the Development environment, as azd launches it).
/// </summary>
public sealed class ManifestFixture : IAsyncLifetime
{
    private string? _directory;

    public JsonObject Resources { get; private set; } = null!;

    public string Text { get; private set; } = "";

    public async ValueTask InitializeAsync()
    {
        _directory = Directory.CreateTempSubdirectory("mg-manifest-").FullName;
        var path = Path.Combine(_directory, "aspire-manifest.json");
        var (exitCode, output) = await Repository.RunDotnetAsync(
            ["run", "--no-build", "-c", Repository.Configuration, "--project", Repository.PathOf("ModelGateway.AppHost"),
                "--", "--publisher", "manifest", "--output-path", path],
            TimeSpan.FromSeconds(60));
        Assert.True(exitCode == 0 && File.Exists(path), $"The AppHost did not publish a manifest (exit {exitCode}):\n{output}");
        Text = await File.ReadAllTextAsync(path);
        Resources = JsonNode.Parse(Text)!["resources"]!.AsObject();
    }

    public ValueTask DisposeAsync()
    {
        if (_directory is not null)
        {
            Directory.Delete(_directory, recursive: true);
        }
        return ValueTask.CompletedTask;
    }

    public JsonObject Resource(string name) =>
        Resources[name]?.AsObject() ?? throw new Xunit.Sdk.XunitException($"The manifest has no resource '{name}'. It has: {string.Join(", ", Resources.Select(r => r.Key))}");

    public string Type(string name) => (string)Resource(name)["type"]!;

    public string? Env(string resource, string key) => (string?)Resource(resource)["env"]?[key];

    public JsonObject Binding(string resource, string binding) =>
        Resource(resource)["bindings"]?[binding]?.AsObject() ?? throw new Xunit.Sdk.XunitException($"'{resource}' has no binding '{binding}'.");

    public static bool IsExternal(JsonObject binding) => (bool?)binding["external"] ?? false;
}
