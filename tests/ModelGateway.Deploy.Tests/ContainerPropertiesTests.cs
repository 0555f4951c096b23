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

    /// <summary>The smallest gen0 budget the gateway's GC runs with (16 MiB; ModelGateway.Api.csproj says why).</summary>
    public const string GatewayGen0Size = "0x1000000";

    [Fact]
    public async Task The_gateway_image_sets_its_gen0_budget()
    {
        var (exitCode, output) = await Repository.RunDotnetAsync(
            ["msbuild", Repository.PathOf("ModelGateway.Api", "ModelGateway.Api.csproj"), "-nologo", "-getItem:ContainerEnvironmentVariable"],
            TimeSpan.FromSeconds(60));
        Assert.True(exitCode == 0, output);
        var variables = JsonNode.Parse(output[output.IndexOf('{', StringComparison.Ordinal)..])!["Items"]!["ContainerEnvironmentVariable"]!.AsArray();

        var gen0 = Assert.Single(variables, v => (string?)v!["Identity"] == "DOTNET_GCgen0size");
        Assert.Equal(GatewayGen0Size, (string?)gen0!["Value"]);
    }
}
