using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace ModelGateway.Realtime.Tests.Support;

/// <summary>
/// Headless Debian Chromium driven over the DevTools protocol on a ClientWebSocket. Flags from
/// MACHINE-NOTES: the base headless set, plus the two that let WebRTC use loopback inside a network
/// namespace (without them ICE gathering never completes there).
/// </summary>
public sealed partial class Chromium : IAsyncDisposable
{
    public const string Executable = "/usr/lib/chromium/chromium";

    private readonly Process _process;
    private readonly string _profile;
    private readonly ClientWebSocket _socket = new();
    private readonly ConcurrentDictionary<int, TaskCompletionSource<JsonObject>> _calls = new();
    private readonly CancellationTokenSource _stop = new();
    private int _nextId;
    private Task? _reader;

    private Chromium(Process process, string profile)
    {
        _process = process;
        _profile = profile;
    }

    public static bool IsInstalled => File.Exists(Executable);

    public int ProcessId => _process.Id;

    public static async Task<Chromium> StartAsync(CancellationToken cancellationToken)
    {
        var profile = Directory.CreateTempSubdirectory("mg-chromium-").FullName;
        var info = new ProcessStartInfo(Executable)
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[]
                 {
                     "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--allow-loopback-in-peer-connection", "--disable-features=WebRtcHideLocalIpsWithMdns",
                     "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
                     $"--user-data-dir={profile}", "about:blank",
                 })
        {
            info.ArgumentList.Add(arg);
        }
        var process = Process.Start(info) ?? throw new InvalidOperationException("chromium did not start");
        process.StandardOutput.BaseStream.CopyToAsync(Stream.Null, cancellationToken).ContinueWith(_ => { }, TaskScheduler.Default).Ignore();
        var chromium = new Chromium(process, profile);
        // A test host that dies must not leave browsers behind for the next run.
        AppDomain.CurrentDomain.ProcessExit += (_, _) => chromium.Kill();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(30));
        string? url = null;
        while (url is null)
        {
            var line = await process.StandardError.ReadLineAsync(timeout.Token) ?? throw new InvalidOperationException("chromium exited before DevTools listened");
            if (DevToolsLine().Match(line) is { Success: true } m)
            {
                url = m.Groups[1].Value;
            }
        }
        process.StandardError.BaseStream.CopyToAsync(Stream.Null, CancellationToken.None).ContinueWith(_ => { }, TaskScheduler.Default).Ignore();
        await chromium._socket.ConnectAsync(new Uri(url), timeout.Token);
        chromium._reader = Task.Run(chromium.ReadLoopAsync, CancellationToken.None);
        return chromium;
    }

    /// <summary>Opens a tab on <paramref name="url"/> and waits for it to load.</summary>
    public async Task<Page> OpenAsync(string url, CancellationToken cancellationToken)
    {
        var target = await CallAsync("Target.createTarget", new JsonObject { ["url"] = "about:blank" }, null, cancellationToken);
        var targetId = (string)target["targetId"]!;
        var attached = await CallAsync("Target.attachToTarget", new JsonObject { ["targetId"] = targetId, ["flatten"] = true }, null, cancellationToken);
        var page = new Page(this, targetId, (string)attached["sessionId"]!);
        await page.CallAsync("Page.navigate", new JsonObject { ["url"] = url }, cancellationToken);
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while ((string?)await page.EvaluateAsync("document.readyState === 'complete' ? location.href : null", cancellationToken) is null)
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException("page did not load: " + url);
            }
            await Task.Delay(50, cancellationToken);
        }
        return page;
    }

    internal async Task<JsonObject> CallAsync(string method, JsonObject parameters, string? sessionId, CancellationToken cancellationToken)
    {
        var id = Interlocked.Increment(ref _nextId);
        var call = new JsonObject { ["id"] = id, ["method"] = method, ["params"] = parameters };
        if (sessionId is not null)
        {
            call["sessionId"] = sessionId;
        }
        var tcs = new TaskCompletionSource<JsonObject>(TaskCreationOptions.RunContinuationsAsynchronously);
        _calls[id] = tcs;
        var bytes = Encoding.UTF8.GetBytes(call.ToJsonString());
        lock (_socket)
        {
            _socket.SendAsync(bytes, WebSocketMessageType.Text, true, cancellationToken).GetAwaiter().GetResult();
        }
        var response = await tcs.Task.WaitAsync(cancellationToken);
        if (response["error"] is { } error)
        {
            throw new InvalidOperationException($"CDP {method} failed: {error.ToJsonString()}");
        }
        return response["result"] as JsonObject ?? [];
    }

    private async Task ReadLoopAsync()
    {
        var buffer = new byte[1 << 16];
        using var message = new MemoryStream();
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                var result = await _socket.ReceiveAsync(buffer, _stop.Token);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    break;
                }
                message.Write(buffer, 0, result.Count);
                if (!result.EndOfMessage)
                {
                    continue;
                }
                var node = JsonNode.Parse(message.GetBuffer().AsSpan(0, (int)message.Length)) as JsonObject;
                message.SetLength(0);
                if (node?["id"] is { } idNode && _calls.TryRemove((int)idNode, out var tcs))
                {
                    tcs.TrySetResult(node);
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or WebSocketException)
        {
        }
        foreach (var (_, tcs) in _calls)
        {
            tcs.TrySetException(new InvalidOperationException("chromium went away"));
        }
    }

    /// <summary>Kills the browser without letting it say goodbye: a client that vanishes.</summary>
    public void Kill()
    {
        try
        {
            _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        Kill();
        await _process.WaitForExitAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10)).ContinueWith(_ => { }, TaskScheduler.Default);
        if (_reader is not null)
        {
            await _reader.ContinueWith(_ => { }, TaskScheduler.Default);
        }
        _socket.Dispose();
        _process.Dispose();
        try
        {
            Directory.Delete(_profile, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    [GeneratedRegex(@"DevTools listening on (ws://\S+)")]
    private static partial Regex DevToolsLine();

    public sealed class Page(Chromium browser, string targetId, string sessionId)
    {
        public Task<JsonObject> CallAsync(string method, JsonObject parameters, CancellationToken cancellationToken) =>
            browser.CallAsync(method, parameters, sessionId, cancellationToken);

        /// <summary>Evaluates an expression (awaiting a promise) and returns its JSON value.</summary>
        public async Task<JsonNode?> EvaluateAsync(string expression, CancellationToken cancellationToken)
        {
            var result = await CallAsync("Runtime.evaluate", new JsonObject
            {
                ["expression"] = expression,
                ["awaitPromise"] = true,
                ["returnByValue"] = true,
            }, cancellationToken);
            if (result["exceptionDetails"] is JsonObject exception)
            {
                var text = (string?)exception["exception"]?["description"] ?? exception.ToJsonString();
                throw new InvalidOperationException("page script failed: " + text);
            }
            return result["result"]?["value"]?.DeepClone();
        }

        public Task CloseAsync(CancellationToken cancellationToken) =>
            browser.CallAsync("Target.closeTarget", new JsonObject { ["targetId"] = targetId }, null, cancellationToken);
    }
}

internal static class TaskExtensions
{
    public static void Ignore(this Task task) => _ = task;
}
