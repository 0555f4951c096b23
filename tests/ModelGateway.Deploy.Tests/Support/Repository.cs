using System.Diagnostics;
using System.Reflection;
using System.Text;

namespace ModelGateway.Deploy.Tests.Support;

/// <summary>Paths in the repository and a process runner with a controlled environment.</summary>
internal static class Repository
{
    public static string Root { get; } = FindRoot();

    /// <summary>The configuration this test project was built in; the projects it references were built the same way.</summary>
    public static string Configuration { get; } =
        typeof(Repository).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "Configuration").Value!;

    public static string PathOf(params string[] parts) => Path.Combine([Root, .. parts]);

    public static string ServiceDll(string project) =>
        PathOf(project, "bin", Configuration, "net10.0", project + ".dll");

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "ModelGateway.sln")))
            {
                return dir.FullName;
            }
        }
        throw new InvalidOperationException("ModelGateway.sln not found above " + AppContext.BaseDirectory);
    }

    /// <summary>
    /// Runs <c>dotnet</c> with <paramref name="args"/> to completion (killed after <paramref name="timeout"/>), with
    /// the inherited environment minus anything that would configure the services, plus <paramref name="environment"/>.
    /// </summary>
    public static async Task<(int ExitCode, string Output)> RunDotnetAsync(IEnumerable<string> args, TimeSpan timeout,
        IReadOnlyDictionary<string, string>? environment = null, string? workingDirectory = null)
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Root,
        };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        // A developer's shell may carry keys or connection strings; the tests must see what a bare deployment sees.
        foreach (var key in psi.Environment.Keys.ToList())
        {
            if (key.StartsWith("ConnectionStrings__", StringComparison.OrdinalIgnoreCase)
                || key.StartsWith("Tenancy__", StringComparison.OrdinalIgnoreCase)
                || key.StartsWith("Gateway__", StringComparison.OrdinalIgnoreCase)
                || key.StartsWith("Policy", StringComparison.OrdinalIgnoreCase)
                || key.StartsWith("Realtime__", StringComparison.OrdinalIgnoreCase)
                || key.StartsWith("Aspire__", StringComparison.OrdinalIgnoreCase)
                || key.EndsWith("_API_KEY", StringComparison.OrdinalIgnoreCase)
                || key is "LLAMA_CPP_BASE" or "ASPNETCORE_ENVIRONMENT" or "DOTNET_ENVIRONMENT")
            {
                psi.Environment.Remove(key);
            }
        }
        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            psi.Environment[key] = value;
        }

        using var process = Process.Start(psi) ?? throw new InvalidOperationException("Could not start dotnet.");
        var output = new StringBuilder();
        void Append(string? line)
        {
            if (line is not null)
            {
                lock (output)
                {
                    output.AppendLine(line);
                }
            }
        }
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
            throw new TimeoutException($"dotnet {string.Join(' ', args)} did not exit within {timeout}. Output:\n{output}");
        }
        process.WaitForExit(); // drains the redirected streams
        lock (output)
        {
            return (process.ExitCode, output.ToString());
        }
    }
}
