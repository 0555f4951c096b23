using Microsoft.Extensions.DependencyInjection;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace ModelGateway.AppHost.Infrastructure;

/// <summary>redis-server run as a local process (no container engine here). Its connection string is host:port.</summary>
internal sealed class LocalRedisResource(string name, string workingDirectory)
    : ExecutableResource(name, "redis-server", workingDirectory), IResourceWithConnectionString
{
    public EndpointReference Endpoint => new(this, "tcp");

    public ReferenceExpression ConnectionStringExpression =>
        ReferenceExpression.Create($"{Endpoint.Property(EndpointProperty.Host)}:{Endpoint.Property(EndpointProperty.Port)}");
}

/// <summary>Postgres run as a local process by the postgres user (it refuses root), with trust auth on loopback only.</summary>
internal sealed class LocalPostgresResource(string name, string workingDirectory, string database)
    : ExecutableResource(name, "runuser", workingDirectory), IResourceWithConnectionString
{
    public EndpointReference Endpoint => new(this, "tcp");

    public ReferenceExpression ConnectionStringExpression =>
        ReferenceExpression.Create(
            $"Host={Endpoint.Property(EndpointProperty.Host)};Port={Endpoint.Property(EndpointProperty.Port)};Username=postgres;Database={database}");
}

/// <summary>
/// Redis, Postgres and coturn as local processes from Debian's packages, for machines without a container engine.
/// Data lives under the AppHost's own <c>.data/</c> folder (git-ignored).
/// </summary>
internal static class LocalServers
{
    public const string PostgresBin = "/usr/lib/postgresql/15/bin";

    public static IResourceBuilder<LocalRedisResource> AddLocalRedis(this IDistributedApplicationBuilder builder, string name)
    {
        var dir = Path.Combine(builder.AppHostDirectory, ".data", name);
        Directory.CreateDirectory(dir);
        var port = FreePort(6379);
        var resource = new LocalRedisResource(name, dir);
        builder.Services.AddHealthChecks().AddAsyncCheck($"{name}-ping", ct => TcpCheckAsync(port, "PING\r\n", "+PONG", ct));
        return builder.AddResource(resource)
            .WithEndpoint("tcp", e =>
            {
                e.Port = port;
                e.TargetPort = port;
                e.IsProxied = false;
                e.UriScheme = "tcp";
            })
            .WithArgs("--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", dir)
            .WithHealthCheck($"{name}-ping");
    }

    public static IResourceBuilder<LocalPostgresResource> AddLocalPostgres(this IDistributedApplicationBuilder builder, string name, string database)
    {
        var root = PostgresRoot(builder.AppHostDirectory, name);
        var data = Path.Combine(root, "data");
        if (builder.ExecutionContext.IsRunMode)
        {
            EnsureCluster(root, data, database);
        }
        var port = FreePort(5432);
        var resource = new LocalPostgresResource(name, root, database);
        builder.Services.AddHealthChecks().AddAsyncCheck($"{name}-ready", async ct =>
        {
            var (code, _) = await RunAsync(PostgresBin + "/pg_isready", ["-h", "127.0.0.1", "-p", port.ToString(System.Globalization.CultureInfo.InvariantCulture)], ct);
            return code == 0 ? HealthCheckResult.Healthy() : HealthCheckResult.Unhealthy("pg_isready failed");
        });
        return builder.AddResource(resource)
            .WithEndpoint("tcp", e =>
            {
                e.Port = port;
                e.TargetPort = port;
                e.IsProxied = false;
                e.UriScheme = "tcp";
            })
            .WithArgs("-u", "postgres", "--", PostgresBin + "/postgres", "-D", data, "-p", port.ToString(System.Globalization.CultureInfo.InvariantCulture),
                "-k", root, "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200")
            .WithHealthCheck($"{name}-ready");
    }

    /// <summary>coturn for TURN relays, with the TURN REST shared secret (RFC 7635 style credentials).</summary>
    public static IResourceBuilder<ExecutableResource> AddLocalCoturn(this IDistributedApplicationBuilder builder, string name,
        IResourceBuilder<ParameterResource> secret, int port, bool allowLoopbackPeers)
    {
        var dir = Path.Combine(builder.AppHostDirectory, ".data", name);
        Directory.CreateDirectory(dir);
        var coturn = builder.AddExecutable(name, "turnserver", dir)
            .WithArgs(ctx =>
            {
                ctx.Args.Add("-n");
                ctx.Args.Add("--listening-ip=127.0.0.1");
                ctx.Args.Add("--relay-ip=127.0.0.1");
                ctx.Args.Add($"--listening-port={port}");
                ctx.Args.Add("--use-auth-secret");
                ctx.Args.Add(ReferenceExpression.Create($"--static-auth-secret={secret.Resource}"));
                ctx.Args.Add("--realm=modelgateway");
                ctx.Args.Add("--fingerprint");
                ctx.Args.Add("--no-tls");
                ctx.Args.Add("--no-dtls");
                ctx.Args.Add("--no-cli");
                ctx.Args.Add("--min-port=49160");
                ctx.Args.Add("--max-port=49200");
                ctx.Args.Add("--log-file=stdout");
                ctx.Args.Add("--simple-log");
                if (allowLoopbackPeers)
                {
                    ctx.Args.Add("--allow-loopback-peers");
                }
            });
        return coturn;
    }

    public static bool CommandExists(string command) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
        .Any(dir => File.Exists(Path.Combine(dir, command)));

    /// <summary>
    /// The cluster lives under the AppHost's <c>.data/</c> folder, unless the postgres user cannot reach it (a checkout
    /// inside a private folder, e.g. one made by <c>mktemp -d</c>): then under a per-checkout folder in the temp directory.
    /// </summary>
    private static string PostgresRoot(string appHostDirectory, string name)
    {
        var preferred = Path.Combine(appHostDirectory, ".data", name);
        if (Environment.UserName != "root" || PostgresCanReach(appHostDirectory))
        {
            return preferred;
        }
        var hash = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(appHostDirectory)))[..12];
        return Path.Combine(Path.GetTempPath(), $"modelgateway-{hash.ToLowerInvariant()}", name);
    }

    private static bool PostgresCanReach(string directory)
    {
        try
        {
            var psi = new ProcessStartInfo("runuser") { RedirectStandardError = true, RedirectStandardOutput = true };
            foreach (var a in new[] { "-u", "postgres", "--", "test", "-x", directory })
            {
                psi.ArgumentList.Add(a);
            }
            using var p = Process.Start(psi)!;
            p.WaitForExit();
            return p.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }

    /// <summary>Creates the cluster once (initdb as postgres) and the application database in single-user mode.</summary>
    private static void EnsureCluster(string root, string data, string database)
    {
        if (File.Exists(Path.Combine(data, "PG_VERSION")))
        {
            return;
        }
        Directory.CreateDirectory(root);
        Run("chmod", ["755", Path.GetDirectoryName(root)!]);
        Run("chown", ["postgres:postgres", root]);
        Run("runuser", ["-u", "postgres", "--", PostgresBin + "/initdb", "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8"]);
        Run("runuser", ["-u", "postgres", "--", PostgresBin + "/postgres", "--single", "-D", data, "postgres"], $"CREATE DATABASE \"{database}\";\n");
    }

    private static void Run(string file, string[] args, string? stdin = null)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = stdin is not null };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"Could not start {file}.");
        if (stdin is not null)
        {
            p.StandardInput.Write(stdin);
            p.StandardInput.Close();
        }
        var output = p.StandardOutput.ReadToEndAsync();
        var error = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0)
        {
            throw new InvalidOperationException($"'{file} {string.Join(' ', args)}' failed ({p.ExitCode}): {error}{output.Result}");
        }
    }

    private static async Task<(int ExitCode, string Output)> RunAsync(string file, string[] args, CancellationToken ct)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        using var p = Process.Start(psi)!;
        var output = await p.StandardOutput.ReadToEndAsync(ct);
        await p.WaitForExitAsync(ct);
        return (p.ExitCode, output);
    }

    private static async Task<HealthCheckResult> TcpCheckAsync(int port, string send, string expect, CancellationToken ct)
    {
        try
        {
            using var client = new TcpClient();
            await client.ConnectAsync(IPAddress.Loopback, port, ct);
            var stream = client.GetStream();
            await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes(send), ct);
            var buffer = new byte[64];
            var read = await stream.ReadAsync(buffer, ct);
            return System.Text.Encoding.ASCII.GetString(buffer, 0, read).StartsWith(expect, StringComparison.Ordinal)
                ? HealthCheckResult.Healthy()
                : HealthCheckResult.Unhealthy("unexpected answer");
        }
        catch (SocketException ex)
        {
            return HealthCheckResult.Unhealthy(ex.Message);
        }
    }

    /// <summary>The preferred port if it is free, else any free port (so a second AppHost or a test run does not collide).</summary>
    internal static int FreePort(int preferred)
    {
        foreach (var candidate in new[] { preferred, 0 })
        {
            try
            {
                using var listener = new TcpListener(IPAddress.Loopback, candidate);
                listener.Start();
                return ((IPEndPoint)listener.LocalEndpoint).Port;
            }
            catch (SocketException)
            {
            }
        }
        throw new InvalidOperationException("No free port.");
    }
}
