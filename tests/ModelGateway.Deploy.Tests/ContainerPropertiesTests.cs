using System.Text.Json.Nodes;
using ModelGateway.Deploy.Tests.Support;

namespace ModelGateway.Deploy.Tests;

/// <summary>
/// The SDK container settings azd (and <c>dotnet publish -t:PublishContainer</c>) build each service's image from,
/// read the way MSBuild evaluates them. Building the image itself needs a registry to pull the base image from.
/// </summary>
public sealed class ContainerPropertiesTests
{
    [Theory]
    [InlineData("ModelGateway.Api", "modelgateway/api")]
    [InlineData("ModelGateway.Policy", "modelgateway/policy")]
    [InlineData("ModelGateway.Realtime", "modelgateway/realtime")]
    public async Task Each_service_builds_a_small_non_root_image_on_port_8080(string project, string repository)
    {
        var (exitCode, output) = await Repository.RunDotnetAsync(
            ["msbuild", Repository.PathOf(project, project + ".csproj"), "-nologo",
                "-getProperty:ContainerRepository", "-getProperty:ContainerBaseImage", "-getProperty:ContainerUser",
                "-getProperty:EnableSdkContainerSupport", "-getProperty:InvariantGlobalization", "-getItem:ContainerPort"],
            TimeSpan.FromSeconds(60));
        Assert.True(exitCode == 0, output);
        var json = JsonNode.Parse(output[output.IndexOf('{', StringComparison.Ordinal)..])!;
        var properties = json["Properties"]!;

        Assert.Equal(repository, (string?)properties["ContainerRepository"]);
        Assert.Equal("mcr.microsoft.com/dotnet/aspnet:10.0-noble-chiseled", (string?)properties["ContainerBaseImage"]);
        Assert.Equal("app", (string?)properties["ContainerUser"]); // the non-root user chiseled images ship with
        Assert.Equal("true", (string?)properties["EnableSdkContainerSupport"]);
        Assert.Equal("true", (string?)properties["InvariantGlobalization"]); // chiseled images have no ICU

        var port = Assert.Single(json["Items"]!["ContainerPort"]!.AsArray());
        Assert.Equal("8080", (string?)port!["Identity"]);
        Assert.Equal("tcp", (string?)port["Type"]);
    }

    /// <summary>
    /// The runtime settings only the environment can give the gateway (ModelGateway.Api.csproj says why): the smallest gen0
    /// budget its GC runs with (16 MiB) and at most two glibc malloc arenas. The AppHost sets the same (ManifestTests).
    /// </summary>
    public static TheoryData<string, string> GatewayRuntimeEnvironment => new()
    {
        { "DOTNET_GCgen0size", "0x1000000" },
        { "MALLOC_ARENA_MAX", "2" },
    };

    [Theory]
    [MemberData(nameof(GatewayRuntimeEnvironment))]
    public async Task The_gateway_image_sets_its_runtime_environment(string name, string value)
    {
        var (exitCode, output) = await Repository.RunDotnetAsync(
            ["msbuild", Repository.PathOf("ModelGateway.Api", "ModelGateway.Api.csproj"), "-nologo", "-getItem:ContainerEnvironmentVariable"],
            TimeSpan.FromSeconds(60));
        Assert.True(exitCode == 0, output);
        var variables = JsonNode.Parse(output[output.IndexOf('{', StringComparison.Ordinal)..])!["Items"]!["ContainerEnvironmentVariable"]!.AsArray();

        var variable = Assert.Single(variables, v => (string?)v!["Identity"] == name);
        Assert.Equal(value, (string?)variable!["Value"]);
    }
}
