using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace ModelGateway.Testing;

/// <summary>
/// Real servers for tests, started as local processes from Debian's packages (the test command installs them):
/// tests run against real Redis and Postgres, never mocks of them.
/// </summary>
public static class FreePort
{
    public static int Get()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public static async Task WaitForAsync(int port, TimeSpan timeout, Process? process = null)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync(IPAddress.Loopback, port);
                return;
            }
            catch (SocketException) when (DateTime.UtcNow < deadline && process is not { HasExited: true })
            {
                await Task.Delay(50);
            }
        }
    }
}

/// <summary>A child process that is killed (with its children) when disposed.</summary>
public sealed class ChildProcess : IDisposable
{
    private readonly Process _process;
    private readonly System.Text.StringBuilder _output = new();

    public ChildProcess(string fileName, params string[] args)
    {
        var psi = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        _process = Process.Start(psi) ?? throw new InvalidOperationException($"Could not start {fileName}.");
        _process.OutputDataReceived += (_, e) => Append(e.Data);
        _process.ErrorDataReceived += (_, e) => Append(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public Process Process => _process;

    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }
        lock (_output)
        {
            if (_output.Length < 64 * 1024)
            {
                _output.AppendLine(line);
            }
        }
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit(5000);
            }
        }
        catch (InvalidOperationException)
        {
        }
        _process.Dispose();
    }

    /// <summary>
    /// SIGKILL to this process alone, then waits for it to exit: for a server without children (redis-server), whose death
    /// a test times. <see cref="Dispose"/>'s whole-tree kill first walks every process on the machine, which on a busy CI
    /// machine let the server answer for tens of milliseconds after the test called it.
    /// </summary>
    public void KillAlone()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill();
                _process.WaitForExit(5000);
            }
        }
        catch (InvalidOperationException)
        {
        }
        _process.Dispose();
    }

    /// <summary>Runs a command to completion and returns its exit code and output.</summary>
    public static async Task<(int ExitCode, string Output)> RunAsync(string fileName, params string[] args)
    {
        using var p = new ChildProcess(fileName, args);
        await p.Process.WaitForExitAsync();
        p.Process.WaitForExit();
        return (p.Process.ExitCode, p.Output);
    }
}

/// <summary>A real redis-server on a free loopback port, without persistence.</summary>
public sealed class RedisServer : IAsyncDisposable
{
    private ChildProcess? _process;

    public int Port { get; } = FreePort.Get();

    /// <summary>StackExchange.Redis connection string.</summary>
    public string ConnectionString => $"127.0.0.1:{Port},abortConnect=false,connectTimeout=10000";

    public static async Task<RedisServer> StartAsync()
    {
        var server = new RedisServer();
        await server.StartProcessAsync();
        return server;
    }

    private async Task StartProcessAsync()
    {
        _process = new ChildProcess("redis-server", "--port", Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "no");
        await FreePort.WaitForAsync(Port, TimeSpan.FromSeconds(10), _process.Process);
        if (_process.Process.HasExited)
        {
            throw new InvalidOperationException("redis-server exited: " + _process.Output);
        }
    }

    /// <summary>Kills the server (all data lost), as a crash would; it is gone when this returns.</summary>
    public void Kill()
    {
        _process?.KillAlone();
        _process = null;
    }

    /// <summary>Starts it again on the same port, empty.</summary>
    public Task RestartAsync()
    {
        Kill();
        return StartProcessAsync();
    }

    public ValueTask DisposeAsync()
    {
        Kill();
        return ValueTask.CompletedTask;
    }
}

/// <summary>
/// A real Postgres 15 cluster in a temporary folder, started as the <c>postgres</c> user (it refuses to run as root),
/// listening on loopback only, with fsync off (tests need speed, not durability across power loss; commits still survive a killed server).
/// </summary>
public sealed class PostgresServer : IAsyncDisposable
{
    public const string BinDir = "/usr/lib/postgresql/15/bin";

    private static readonly Lazy<Task<PostgresServer>> Shared = new(async () =>
    {
        var server = await StartAsync();
        AppDomain.CurrentDomain.ProcessExit += (_, _) => server.DisposeAsync().AsTask().GetAwaiter().GetResult();
        return server;
    });

    private readonly string _dataDir;
    private ChildProcess? _process;
    private int _databases;

    private PostgresServer(string dataDir)
    {
        _dataDir = dataDir;
    }

    public int Port { get; } = FreePort.Get();

    /// <summary>One server per test process; each user takes its own database from <see cref="CreateDatabaseAsync"/>.</summary>
    public static Task<PostgresServer> GetSharedAsync() => Shared.Value;

    public static async Task<PostgresServer> StartAsync()
    {
        var root = Path.Combine(Path.GetTempPath(), "mg-pg-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(root);
        var server = new PostgresServer(Path.Combine(root, "data"));
        var asRoot = Environment.UserName == "root";
        if (asRoot)
        {
            await Run("chown", "postgres:postgres", root);
        }
        var init = await RunAs(asRoot, BinDir + "/initdb", "-D", server._dataDir, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8");
        if (init.ExitCode != 0)
        {
            throw new InvalidOperationException("initdb failed: " + init.Output);
        }
        await server.StartProcessAsync();
        return server;
    }

    private async Task StartProcessAsync()
    {
        var asRoot = Environment.UserName == "root";
        var args = new List<string>
        {
            BinDir + "/postgres", "-D", _dataDir, "-p", Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "-k", Path.GetDirectoryName(_dataDir)!, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
            // synchronous_commit stays on: outage tests kill the server, and a commit must then survive in the OS cache
            // (fsync=off only gives up durability across a machine crash, which no test simulates).
            "-c", "full_page_writes=off", "-c", "max_connections=300",
        };
        _process = asRoot
            ? new ChildProcess("runuser", ["-u", "postgres", "--", .. args])
            : new ChildProcess(args[0], args.Skip(1).ToArray());
        await FreePort.WaitForAsync(Port, TimeSpan.FromSeconds(30), _process.Process);
        // The port opens slightly before the server accepts queries.
        for (var i = 0; i < 100; i++)
        {
            var ready = await ChildProcess.RunAsync(BinDir + "/pg_isready", "-h", "127.0.0.1", "-p", Port.ToString(System.Globalization.CultureInfo.InvariantCulture));
            if (ready.ExitCode == 0)
            {
                return;
            }
            await Task.Delay(100);
        }
        throw new InvalidOperationException("postgres did not become ready: " + _process.Output);
    }

    /// <summary>Connection string (Npgsql) for a database.</summary>
    public string ConnectionString(string database) =>
        $"Host=127.0.0.1;Port={Port};Username=postgres;Database={database};Pooling=true;Maximum Pool Size=50;Timeout=5;Command Timeout=10";

    /// <summary>Creates a fresh, empty database and returns its connection string.</summary>
    public async Task<string> CreateDatabaseAsync(string prefix = "test")
    {
        var name = $"{prefix}_{Interlocked.Increment(ref _databases)}_{Guid.NewGuid().ToString("N")[..6]}".ToLowerInvariant();
        var result = await PsqlAsync("postgres", $"CREATE DATABASE \"{name}\"");
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException("CREATE DATABASE failed: " + result.Output);
        }
        return ConnectionString(name);
    }

    /// <summary>Runs SQL through psql and returns the unaligned, tuples-only output.</summary>
    public Task<(int ExitCode, string Output)> PsqlAsync(string database, string sql) =>
        ChildProcess.RunAsync("psql", "-h", "127.0.0.1", "-p", Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql);

    /// <summary>Stops the server (as an outage would); <see cref="StartAgainAsync"/> brings it back with its data.</summary>
    public void Stop()
    {
        _process?.Dispose();
        _process = null;
    }

    public Task StartAgainAsync()
    {
        Stop();
        return StartProcessAsync();
    }

    public ValueTask DisposeAsync()
    {
        Stop();
        try
        {
            Directory.Delete(Path.GetDirectoryName(_dataDir)!, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
        return ValueTask.CompletedTask;
    }

    private static Task<(int ExitCode, string Output)> Run(string file, params string[] args) => ChildProcess.RunAsync(file, args);

    private static Task<(int ExitCode, string Output)> RunAs(bool asRoot, string file, params string[] args) =>
        asRoot ? ChildProcess.RunAsync("runuser", ["-u", "postgres", "--", file, .. args]) : ChildProcess.RunAsync(file, args);
}
