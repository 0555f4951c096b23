using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using ModelGateway.Api.Tests.FakeUpstream;
using ModelGateway.Api.Tests.Support;
using ModelGateway.Testing;
using Npgsql;
using StackExchange.Redis;

namespace ModelGateway.Api.Tests.Budgets;

/// <summary>
/// Two Api instances (replicas) sharing one real Redis and one real Postgres database, the fake upstream, and one
/// <see cref="FakeTimeProvider"/> (so windows and budget periods are under the test's control). Alias <c>priced</c> costs
/// $10 per million input tokens and $20 per million output tokens: whole micro-dollars per token, so the ledger's sum
/// can be compared exactly with the fake's reported token totals.
/// </summary>
public abstract class BudgetCluster : IAsyncLifetime
{
    public const long InputMicroPerToken = 10;
    public const long OutputMicroPerToken = 20;

    public RedisServer Redis { get; private set; } = null!;
    public PostgresServer Postgres { get; private set; } = null!;
    public string PostgresConnectionString { get; private set; } = "";
    public FakeUpstreamApp Fake { get; } = new();
    public FakeTimeProvider Time { get; } = new(new DateTimeOffset(2030, 1, 15, 12, 0, 5, TimeSpan.Zero));
    public GatewayApp A { get; private set; } = null!;
    public GatewayApp B { get; private set; } = null!;
    public ConnectionMultiplexer RedisClient { get; private set; } = null!;

    /// <summary>Tenants and limits, as configuration settings.</summary>
    protected abstract IEnumerable<KeyValuePair<string, string?>> Tenants { get; }

    /// <summary>True to run a Postgres server of our own (a test stops it); otherwise a database on the shared server.</summary>
    protected virtual bool OwnPostgres => false;

    protected virtual int Replicas => 2;

    public async ValueTask InitializeAsync()
    {
        Redis = await RedisServer.StartAsync();
        Postgres = OwnPostgres ? await PostgresServer.StartAsync() : await PostgresServer.GetSharedAsync();
        PostgresConnectionString = await Postgres.CreateDatabaseAsync("budget");
        RedisClient = await ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString + ",allowAdmin=true");
        var settings = GatewayFixture.BaseSettings(Fake.Client.BaseAddress!.ToString().TrimEnd('/'), PostgresConnectionString, Redis.ConnectionString);
        settings["Gateway:Routes:priced:Targets:0:Provider"] = "openrouter";
        settings["Gateway:Routes:priced:Targets:0:Model"] = "gpt-priced";
        settings["Gateway:Routes:priced:Targets:0:InputPerMillion"] = "10";
        settings["Gateway:Routes:priced:Targets:0:OutputPerMillion"] = "20";
        settings["Gateway:Routes:priced:DefaultMaxTokens"] = "16";
        settings["Ledger:FlushInterval"] = "00:00:00.050";
        settings["Budgets:RebuildGrace"] = "00:00:00.300";
        foreach (var (k, v) in Tenants)
        {
            settings[k] = v;
        }
        A = new GatewayApp(settings, s => s.AddSingleton<TimeProvider>(Time));
        _ = A.Client;
        if (Replicas > 1)
        {
            B = new GatewayApp(settings, s => s.AddSingleton<TimeProvider>(Time));
            _ = B.Client;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await A.DisposeAsync();
        if (B is not null)
        {
            await B.DisposeAsync();
        }
        await Fake.DisposeAsync();
        RedisClient.Dispose();
        await Redis.DisposeAsync();
        if (OwnPostgres)
        {
            await Postgres.DisposeAsync();
        }
        GC.SuppressFinalize(this);
    }

    public static HttpRequestMessage Chat(string key, string content, bool stream = true, int? maxTokens = 10, string model = "priced") =>
        GatewayApp.Chat(maxTokens is { } m
            ? new { model, stream, max_tokens = m, messages = new[] { new { role = "user", content } } }
            : (object)new { model, stream, messages = new[] { new { role = "user", content } } }, key);

    public async Task<T> ScalarAsync<T>(string sql, params (string Name, object Value)[] args)
    {
        // Unpooled: a test that restarts Postgres must not get a connection to the old server.
        await using var connection = new NpgsqlConnection(PostgresConnectionString + ";Pooling=false");
        await connection.OpenAsync(TestContext.Current.CancellationToken);
        await using var cmd = new NpgsqlCommand(sql, connection);
        foreach (var (name, value) in args)
        {
            cmd.Parameters.AddWithValue(name, value);
        }
        return (T)(await cmd.ExecuteScalarAsync(TestContext.Current.CancellationToken))!;
    }

    /// <summary>Ledger sum of a tenant in micro-dollars, after waiting for rows to stop arriving.</summary>
    public async Task<(long Rows, long Cost)> LedgerAsync(string tenant, long expectedRows = -1)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        long rows = -1;
        while (true)
        {
            long now;
            try
            {
                now = await ScalarAsync<long>("SELECT count(*) FROM usage_ledger WHERE tenant_id = @t", ("t", tenant));
            }
            catch (NpgsqlException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(300);
                continue;
            }
            if ((expectedRows >= 0 ? now == expectedRows : now == rows) || DateTime.UtcNow > deadline)
            {
                var cost = await ScalarAsync<long>("SELECT coalesce(sum(cost_micro), 0)::bigint FROM usage_ledger WHERE tenant_id = @t", ("t", tenant));
                return (now, cost);
            }
            rows = now;
            await Task.Delay(300);
        }
    }

    /// <summary>The spend counter in Redis for a tenant's current period.</summary>
    public async Task<long> RedisSpentAsync(string tenant, string period)
    {
        var value = await RedisClient.GetDatabase().StringGetAsync($"mg:{{t:{tenant}}}:spent:{period}");
        return (long)value;
    }

    public async Task<(long Input, long Output)> FakeUsageAsync()
    {
        var stats = await Fake.Client.GetFromJsonAsync<JsonElement>("/_fake/stats", TestContext.Current.CancellationToken);
        return (stats.GetProperty("input_tokens").GetInt64(), stats.GetProperty("output_tokens").GetInt64());
    }
}
