using System.Diagnostics;
using System.Text.Json.Nodes;
using ModelGateway.Realtime.Sessions;
using ModelGateway.Realtime.Tests.Support;

namespace ModelGateway.Realtime.Tests.Browser;

/// <summary>
/// Headless Chromium as the peer, running the demo page's own client (wwwroot/realtime-client.js).
/// Run the assembly inside a network namespace (see docs/realtime.md, "Tests") so nothing leaves loopback.
/// </summary>
[Collection(RealtimeCollection.Name)]
public sealed class BrowserChatTests(RealtimeFixture fixture)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>Measured figures go to the test output and to the console, so the test command shows them.</summary>
    private static void Report(string message)
    {
        TestContext.Current.TestOutputHelper?.WriteLine(message);
        Console.WriteLine("[measure] " + message);
    }

    private async Task<Chromium.Page> OpenDemoAsync() => await fixture.Browser.OpenAsync(fixture.BaseUrl + "/index.html", Ct);

    private static string Script(string body) => $$"""
        (async () => {
          const { RealtimeClient } = await import('/realtime-client.js');
          const key = '{{ApiStub.ValidKey}}';
          {{body}}
        })()
        """;

    [Fact]
    public async Task Chat_request_over_the_data_channel_streams_its_answer_back()
    {
        var page = await OpenDemoAsync();
        var result = (await page.EvaluateAsync(Script("""
            const client = await new RealtimeClient({ apiKey: key }).connect();
            const t = performance.now();
            let first = null;
            const chunks = [];
            const completion = await client.chat(
              { model: 'chat-default', messages: [{ role: 'user', content: 'hello over webrtc' }] },
              { onChunk: c => { first ??= performance.now() - t; chunks.push(c); } });
            const second = performance.now();
            await client.chat({ model: 'chat-default', messages: [{ role: 'user', content: 'again' }] });
            const secondMs = performance.now() - second;
            let apiError = null;
            try { await client.chat({ model: 'error', messages: [{ role: 'user', content: 'x' }] }); }
            catch (e) { apiError = { status: e.status, code: e.error?.code, type: e.error?.type }; }
            const bad = await client.sendRaw('{not json', null);
            const streamed = chunks.map(c => c.choices[0]?.delta?.content ?? '').join('');
            client.close();
            return { connectMs: client.timings.connectMs, firstChunkMs: first, secondMs, chunks: chunks.length, streamed,
                     content: completion.choices[0].message.content, finish: completion.choices[0].finish_reason,
                     object: completion.object, usage: completion.usage, apiError, bad };
            """), Ct))!.AsObject();

        Report($"direct: connect {result["connectMs"]} ms, first chunk {result["firstChunkMs"]} ms, second request {result["secondMs"]} ms");
        Assert.Equal("echo: hello over webrtc", (string?)result["content"]);
        Assert.Equal((string?)result["content"], (string?)result["streamed"]);
        Assert.True((int)result["chunks"]! >= 4, "streamed chunks arrive one by one");
        Assert.Equal("chat.completion", (string?)result["object"]);
        Assert.Equal("stop", (string?)result["finish"]);
        Assert.True((int)result["usage"]!["total_tokens"]! > 0);
        Assert.Equal(400, (int)result["apiError"]!["status"]!);
        Assert.Equal("model_not_found", (string?)result["apiError"]!["code"]);
        Assert.Equal("error", (string?)result["bad"]!["type"]);
        Assert.Equal("invalid_json", (string?)result["bad"]!["error"]!["code"]);

        // The Api saw a streaming request with the tenant's key and a W3C trace context.
        var (body, traceParent) = fixture.Api.ChatRequests.First(r => (string?)r.Body["messages"]![0]!["content"] == "hello over webrtc");
        Assert.True((bool)body["stream"]!);
        Assert.Null(body["id"]);
        Assert.Matches("^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$", traceParent);
        await page.CloseAsync(Ct);
    }

    [Fact]
    public async Task Chat_works_through_coturn_with_relay_only_policy()
    {
        var page = await OpenDemoAsync();
        var result = (await page.EvaluateAsync(Script("""
            const client = await new RealtimeClient({ apiKey: key, iceTransportPolicy: 'relay' }).connect();
            const completion = await client.chat({ model: 'chat-default', messages: [{ role: 'user', content: 'via turn' }] });
            const stats = await client.pc.getStats();
            let localType = null;
            stats.forEach(s => {
              if (s.type === 'transport' && s.selectedCandidatePairId) {
                const pair = stats.get(s.selectedCandidatePairId);
                localType = stats.get(pair.localCandidateId)?.candidateType;
              }
            });
            const sessionId = client.sessionId;
            client.close();
            return { content: completion.choices[0].message.content, localType, sessionId, connectMs: client.timings.connectMs };
            """), Ct))!.AsObject();

        Report($"relay: connect {result["connectMs"]} ms");
        Assert.Equal("echo: via turn", (string?)result["content"]);
        Assert.Equal("relay", (string?)result["localType"]);
        await page.CloseAsync(Ct);
    }

    [Fact]
    public async Task A_70_KB_message_goes_each_way()
    {
        var page = await OpenDemoAsync();
        var result = (await page.EvaluateAsync(Script("""
            const client = await new RealtimeClient({ apiKey: key }).connect();
            const big = 'x'.repeat(70000);
            const completion = await client.chat({ model: 'chat-default', stream: false, messages: [{ role: 'user', content: big }] });
            client.close();
            return { length: completion.choices[0].message.content.length, ok: completion.choices[0].message.content === 'echo: ' + big };
            """), Ct))!.AsObject();

        Assert.True((bool)result["ok"]!);
        Assert.Equal(70006, (int)result["length"]!);
        Assert.Contains(fixture.Api.ChatRequests, r => ((string?)r.Body["messages"]![0]!["content"])?.Length == 70000);
        await page.CloseAsync(Ct);
    }

    [Fact]
    public async Task Several_requests_are_in_flight_on_one_channel()
    {
        var page = await OpenDemoAsync();
        var result = (await page.EvaluateAsync(Script("""
            const client = await new RealtimeClient({ apiKey: key }).connect();
            const order = [];
            const t = performance.now();
            const answers = await Promise.all([1, 2, 3, 4].map(n =>
              client.chat({ id: n, model: 'slow', messages: [{ role: 'user', content: 'request ' + n }] },
                          { onChunk: () => order.push(n) })));
            const elapsed = performance.now() - t;
            client.close();
            let switches = 0;
            for (let i = 1; i < order.length; i++) if (order[i] !== order[i - 1]) switches++;
            return { contents: answers.map(a => a.choices[0].message.content), elapsed, switches };
            """), Ct))!.AsObject();

        var contents = result["contents"]!.AsArray().Select(c => (string?)c).ToArray();
        Assert.Equal(["echo: request 1", "echo: request 2", "echo: request 3", "echo: request 4"], contents);
        // Each slow answer takes ~8 x 150 ms; four in sequence would take ~5 s.
        Assert.True((double)result["elapsed"]! < 3500, $"answers ran concurrently ({result["elapsed"]} ms)");
        Assert.True((int)result["switches"]! > 4, "chunks of different requests interleave");
        await page.CloseAsync(Ct);
    }

    [Fact]
    public async Task Twenty_sessions_chat_concurrently()
    {
        var page = await OpenDemoAsync();
        var peak = 0;
        using var watch = new CancellationTokenSource();
        var watcher = Task.Run(async () =>
        {
            while (!watch.IsCancellationRequested)
            {
                peak = Math.Max(peak, fixture.Sessions.Count);
                await Task.Delay(20, CancellationToken.None);
            }
        }, CancellationToken.None);
        var stopwatch = Stopwatch.StartNew();
        var result = (await page.EvaluateAsync(Script("""
            const clients = await Promise.all(Array.from({ length: 20 }, () => new RealtimeClient({ apiKey: key }).connect()));
            const answers = await Promise.all(clients.map((c, i) =>
              c.chat({ model: 'chat-default', messages: [{ role: 'user', content: 'session ' + i }] })));
            const ok = answers.every((a, i) => a.choices[0].message.content === 'echo: session ' + i);
            const distinct = new Set(clients.map(c => c.sessionId)).size;
            clients.forEach(c => c.close());
            return { ok, distinct };
            """), Ct))!.AsObject();
        stopwatch.Stop();
        watch.Cancel();
        await watcher;

        Report($"20 sessions connected and answered in {stopwatch.ElapsedMilliseconds} ms (peak {peak})");
        Assert.True((bool)result["ok"]!);
        Assert.Equal(20, (int)result["distinct"]!);
        Assert.True(peak >= 20, $"peak sessions {peak}");
        await page.CloseAsync(Ct);
    }

    [Fact]
    public async Task A_client_that_vanishes_is_reaped_after_consent_is_lost()
    {
        await using var doomed = await Chromium.StartAsync(Ct);
        var page = await doomed.OpenAsync(fixture.BaseUrl + "/index.html", Ct);
        var sessionId = (string?)await page.EvaluateAsync(Script("""
            const client = await new RealtimeClient({ apiKey: key }).connect();
            await client.chat({ model: 'chat-default', messages: [{ role: 'user', content: 'bye' }] });
            window.keep = client;
            return client.sessionId;
            """), Ct);
        Assert.NotNull(sessionId);
        var session = fixture.Sessions.Find(sessionId!);
        Assert.NotNull(session);
        Assert.Equal(SessionPhase.Open, session!.Phase);

        var killed = Stopwatch.StartNew();
        doomed.Kill();
        var deadline = RealtimeFixture.ConsentTimeout + TimeSpan.FromSeconds(5);
        while (fixture.Sessions.Find(sessionId!) is not null && killed.Elapsed < deadline)
        {
            await Task.Delay(100, Ct);
        }
        Report($"vanished client reaped after {killed.ElapsedMilliseconds} ms: {session.CloseReason}");
        Assert.Equal(SessionPhase.Closed, session.Phase);
        Assert.Equal("consent lost", session.CloseReason);
        Assert.Null(fixture.Sessions.Find(sessionId!));
    }
}
