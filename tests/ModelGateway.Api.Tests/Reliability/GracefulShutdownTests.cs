using System.Diagnostics;
using System.Net;
using System.Text;
using ModelGateway.Api.Tests.FakeUpstream;
using ModelGateway.Api.Tests.Support;
using ModelGateway.Testing;
using Npgsql;

namespace ModelGateway.Api.Tests.Reliability;

/// <summary>Redis, a Postgres database and the fake upstream; each test starts (and stops) a gateway of its own.</summary>
public sealed class ShutdownStores : IAsyncLifetime
{
    public RedisServer Redis { get; private set; } = null!;
    public string Postgres { get; private set; } = "";
    public FakeUpstreamApp Fake { get; } = new();

    public async ValueTask InitializeAsync()
    {
        Redis = await RedisServer.StartAsync();
        Postgres = await (await PostgresServer.GetSharedAsync()).CreateDatabaseAsync("drain");
    }

    public GatewayApp StartGateway(string tenant, string key, string drainTimeout)
    {
        var settings = GatewayFixture.BaseSettings(Fake.Client.BaseAddress!.ToString().TrimEnd('/'), Postgres, Redis.ConnectionString);
        settings["Tenancy:Seed:1:Id"] = tenant;
        settings["Tenancy:Seed:1:ApiKeys:0"] = key;
        settings["Server:DrainTimeout"] = drainTimeout;
        // Large batches and a long interval: rows are still in the writers' buffers when the stop begins.
        settings["Ledger:FlushInterval"] = "00:00:30";
        settings["Traces:FlushInterval"] = "00:00:30";
        var app = new GatewayApp(settings);
        _ = app.Client;
        return app;
    }

    public async Task<long> CountAsync(string sql)
    {
        await using var connection = new NpgsqlConnection(Postgres + ";Pooling=false");
        await connection.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, connection);
        return (long)(await cmd.ExecuteScalarAsync())!;
    }

    public async ValueTask DisposeAsync()
    {
        await Fake.DisposeAsync();
        await Redis.DisposeAsync();
    }
}

/// <summary>
/// Stopping a replica: streams in flight finish if they can within the drain timeout, otherwise end with a clean error
/// event; the ledger and trace rows still buffered are flushed to Postgres before the process ends.
/// </summary>
public sealed class GracefulShutdownTests(ShutdownStores stores) : IClassFixture<ShutdownStores>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_stream_in_flight_when_the_host_stops_finishes_and_its_rows_are_flushed()
    {
        var app = stores.StartGateway("drain-finish", "sk-drain-finish-0123456789", "00:00:30");
        var (events, stopTook) = await StreamWhileStoppingAsync(app, "sk-drain-finish-0123456789", words: 8);
        Assert.Equal("[DONE]", events[^1]);
        Assert.Contains(events, e => e.Contains("w8", StringComparison.Ordinal));
        TestContext.Current.TestOutputHelper?.WriteLine($"stop took {stopTook.TotalSeconds:0.00} s");
        Assert.Equal(1, await stores.CountAsync("SELECT count(*) FROM usage_ledger WHERE tenant_id = 'drain-finish' AND status = 'ok'"));
        Assert.Equal(1, await stores.CountAsync("SELECT count(*) FROM traces WHERE tenant_id = 'drain-finish' AND status = 'ok'"));
    }

    [Fact]
    public async Task A_stream_longer_than_the_drain_timeout_ends_with_an_error_event_and_is_billed_and_flushed()
    {
        var app = stores.StartGateway("drain-cut", "sk-drain-cut-0123456789ab", "00:00:01");
        var (events, stopTook) = await StreamWhileStoppingAsync(app, "sk-drain-cut-0123456789ab", words: 60);
        TestContext.Current.TestOutputHelper?.WriteLine($"stop took {stopTook.TotalSeconds:0.00} s; last event {events[^1]}");
        Assert.Contains("server_shutting_down", events[^1], StringComparison.Ordinal);
        Assert.DoesNotContain("[DONE]", events);
        // 60 chunks 300 ms apart would take 18 s: the drain cut it after about 1 s.
        Assert.True(stopTook < TimeSpan.FromSeconds(10), $"stop took {stopTook}");
        Assert.Equal(1, await stores.CountAsync(
            "SELECT count(*) FROM usage_ledger WHERE tenant_id = 'drain-cut' AND status = 'client_disconnected' AND output_tokens > 0 AND cost_micro > 0"));
        Assert.Equal(1, await stores.CountAsync("SELECT count(*) FROM traces WHERE tenant_id = 'drain-cut'"));
    }

    private static async Task<(List<string> Events, TimeSpan StopTook)> StreamWhileStoppingAsync(GatewayApp app, string key, int words)
    {
        var content = string.Join(' ', Enumerable.Range(1, words).Select(i => "w" + i));
        using var client = new HttpClient(new SocketsHttpHandler()) { BaseAddress = app.Client.BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
        using var request = GatewayApp.Chat(new { model = "fault-slow-chunks@300", stream = true, messages = new[] { new { role = "user", content } } }, key);
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(Ct), Encoding.UTF8);
        var events = new List<string>();
        while (events.Count == 0 && await reader.ReadLineAsync(Ct) is { } first)
        {
            if (first.StartsWith("data: ", StringComparison.Ordinal))
            {
                events.Add(first[6..]);
            }
        }

        var sw = Stopwatch.StartNew();
        var stopping = app.DisposeAsync().AsTask();
        while (await reader.ReadLineAsync(Ct) is { } line)
        {
            if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                events.Add(line[6..]);
            }
        }
        await stopping.WaitAsync(TimeSpan.FromSeconds(60), Ct);
        sw.Stop();
        return (events, sw.Elapsed);
    }
}
