using System.Diagnostics;

namespace ModelGateway.AppHost.Infrastructure;

/// <summary>
/// Whether Redis and Postgres run as containers or as local processes. Containers in publish mode always (that is what
/// deploys); in run mode containers when a container engine answers, local processes otherwise. Force either with the
/// configuration value <c>Infrastructure</c> (<c>containers</c> or <c>local</c>), e.g. <c>dotnet run -- --Infrastructure local</c>.
/// </summary>
internal static class InfrastructureMode
{
    public const string ConfigKey = "Infrastructure";

    public static bool UseContainers(IDistributedApplicationBuilder builder)
    {
        if (builder.ExecutionContext.IsPublishMode)
        {
            return true;
        }
        return builder.Configuration[ConfigKey]?.ToLowerInvariant() switch
        {
            "containers" or "container" => true,
            "local" or "process" or "processes" => false,
            null or "" or "auto" => ContainerEngineAnswers(),
            var other => throw new InvalidOperationException($"{ConfigKey} must be 'auto', 'containers' or 'local', not '{other}'."),
        };
    }

    private static bool ContainerEngineAnswers()
    {
        try
        {
            var psi = new ProcessStartInfo("docker", "info --format {{.ServerVersion}}")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            using var p = Process.Start(psi);
            if (p is null)
            {
                return false;
            }
            if (!p.WaitForExit(5000))
            {
                p.Kill(entireProcessTree: true);
                return false;
            }
            return p.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false; // no docker client at all
        }
    }
}
