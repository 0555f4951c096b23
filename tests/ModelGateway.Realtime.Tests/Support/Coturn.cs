using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace ModelGateway.Realtime.Tests.Support;

/// <summary>Debian's coturn on loopback with the flags from MACHINE-NOTES (TURN REST shared secret).</summary>
public sealed class Coturn : IAsyncDisposable
{
    public const string Executable = "/usr/bin/turnserver";
    public const string Secret = "realtime-test-shared-secret";
    public const int RelayPortMin = 49160;
    public const int RelayPortMax = 49200;

    private readonly Process _process;

    private Coturn(Process process, int port)
    {
        _process = process;
        Port = port;
    }

    public int Port { get; }

    public string Url => $"turn:127.0.0.1:{Port}?transport=udp";

    public static bool IsInstalled => File.Exists(Executable);

    public static async Task<Coturn> StartAsync(CancellationToken cancellationToken)
    {
        var port = FreeUdpPort();
        var info = new ProcessStartInfo(Executable) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[]
                 {
                     "-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", $"--listening-port={port}",
                     "--use-auth-secret", $"--static-auth-secret={Secret}", "--realm=modelgateway.test", "--fingerprint",
                     "--no-tls", "--no-dtls", "--no-cli", $"--min-port={RelayPortMin}", $"--max-port={RelayPortMax}",
                     "--log-file=stdout", "--simple-log",
                     // Only for loopback tests: otherwise coturn refuses CREATE_PERMISSION to 127.0.0.1 (403 Forbidden IP).
                     "--allow-loopback-peers",
                 })
        {
            info.ArgumentList.Add(arg);
        }
        var process = Process.Start(info) ?? throw new InvalidOperationException("turnserver did not start");
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try
            {
                process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
            }
        };
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        await WaitForBindingResponseAsync(port, cancellationToken);
        if (process.HasExited)
        {
            throw new InvalidOperationException("turnserver exited at start");
        }
        return new Coturn(process, port);
    }

    /// <summary>Ready when it answers a STUN Binding request (RFC 8489 §6), which TURN servers serve too.</summary>
    private static async Task WaitForBindingResponseAsync(int port, CancellationToken cancellationToken)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var request = new ModelGateway.Realtime.Ice.StunMessageWriter(0x0001, System.Security.Cryptography.RandomNumberGenerator.GetBytes(12)).ToArray();
        var buffer = new byte[1500];
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (DateTime.UtcNow < deadline)
        {
            await socket.SendToAsync(request, new IPEndPoint(IPAddress.Loopback, port), cancellationToken);
            using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            wait.CancelAfter(200);
            try
            {
                await socket.ReceiveAsync(buffer, wait.Token);
                return;
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
            }
            catch (SocketException)
            {
                await Task.Delay(100, cancellationToken);
            }
        }
        throw new TimeoutException("turnserver did not answer a STUN binding request");
    }

    private static int FreeUdpPort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(5));
        }
        catch (Exception e) when (e is InvalidOperationException or TimeoutException)
        {
        }
        _process.Dispose();
    }
}
