using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.Logging;
using ModelGateway.Api.Tests.FakeUpstream;
using ModelGateway.Testing;

namespace ModelGateway.Api.Tests.Support;

/// <summary>
/// The Api on Kestrel (loopback) against a real Redis, a real Postgres database of its own and the fake upstream,
/// configured as the Development contract says: tenant <c>dev</c> with key <c>sk-dev-local</c>, admin key
/// <c>sk-admin-local</c>, aliases <c>chat-default</c>, <c>chat-anthropic</c>, <c>chat-local</c>. Extra aliases route to
/// the fake's fault models (<c>fault-*</c> → upstream model of the same name on the OpenAI protocol).
/// </summary>
public class GatewayFixture : IAsyncLifetime
{
    public const string DevKey = "sk-dev-local";
    public const string AdminKey = "sk-admin-local";

    public RedisServer Redis { get; private set; } = null!;
    public PostgresServer Postgres { get; private set; } = null!;
    public string PostgresConnectionString { get; private set; } = "";
    public FakeUpstreamApp Fake { get; } = new();
    public GatewayApp Gateway { get; private set; } = null!;

    /// <summary>Settings a derived fixture adds or overrides.</summary>
    protected virtual IEnumerable<KeyValuePair<string, string?>> ExtraSettings => [];

    /// <summary>Service overrides a derived fixture applies to the gateway (ConfigureTestServices).</summary>
    protected virtual void ConfigureServices(Microsoft.Extensions.DependencyInjection.IServiceCollection services)
    {
    }

    public virtual async ValueTask InitializeAsync()
    {
        Redis = await RedisServer.StartAsync();
        Postgres = await PostgresServer.GetSharedAsync();
        PostgresConnectionString = await Postgres.CreateDatabaseAsync("gw");
        var fakeBase = Fake.Client.BaseAddress!.ToString().TrimEnd('/');
        Gateway = new GatewayApp(BaseSettings(fakeBase, PostgresConnectionString, Redis.ConnectionString).Concat(ExtraSettings), ConfigureServices);
        _ = Gateway.Client; // start now, so failures surface in the fixture
    }

    /// <summary>The settings every gateway under test gets: storage, the fake upstream's providers, the fault aliases.</summary>
    public static Dictionary<string, string?> BaseSettings(string fakeBase, string postgres, string redis)
    {
        var s = new Dictionary<string, string?>
        {
            ["ConnectionStrings:postgres"] = postgres,
            ["ConnectionStrings:redis"] = redis,
            ["Gateway:Providers:openrouter:BaseUrl"] = fakeBase + "/openai/v1",
            ["Gateway:Providers:anthropic:BaseUrl"] = fakeBase + "/anthropic",
            ["Gateway:Providers:anthropic:ApiKey"] = "sk-ant-fake",
            ["Gateway:Providers:llamacpp:BaseUrl"] = fakeBase + "/llamacpp",
            ["Gateway:Providers:openrouter:FirstByteTimeout"] = "00:00:02",
            ["Gateway:Providers:openrouter:IdleTimeout"] = "00:00:02",
            ["Gateway:Routing:Backoff"] = "00:00:00.010",
        };
        foreach (var fault in (string[])["fault-500", "fault-429", "fault-slow-chunks@300", "fault-cut-stream", "fault-hang",
                     "fault-malformed-chunk", "fault-slow-first-token@5000", "fault-connection-reset", "fault-400"])
        {
            s[$"Gateway:Routes:{fault}:Targets:0:Provider"] = "openrouter";
            s[$"Gateway:Routes:{fault}:Targets:0:Model"] = fault;
            s[$"Gateway:Routes:{fault}:Targets:0:InputPerMillion"] = "1";
            s[$"Gateway:Routes:{fault}:Targets:0:OutputPerMillion"] = "2";
        }
        return s;
    }

    public virtual async ValueTask DisposeAsync()
    {
        await Gateway.DisposeAsync();
        await Fake.DisposeAsync();
        await Redis.DisposeAsync();
        GC.SuppressFinalize(this);
    }
}

/// <summary>The Api as a Kestrel-hosted WebApplicationFactory with the given settings, in the Development environment.</summary>
public sealed class GatewayApp(IEnumerable<KeyValuePair<string, string?>> settings,
    Action<Microsoft.Extensions.DependencyInjection.IServiceCollection>? configureServices = null) : WebApplicationFactory<Program>
{
    private readonly List<KeyValuePair<string, string?>> _settings = settings.ToList();
    private HttpClient? _client;

    public HttpClient Client
    {
        get
        {
            lock (TestHostStart.Gate)
            {
                if (_client is null)
                {
                    UseKestrel(k => k.Listen(System.Net.IPAddress.Loopback, 0)); // not UseKestrel(0): it races Kestrel's bind (dotnet/aspnetcore#67714)
                    _client = CreateClient();
                    _client.Timeout = TimeSpan.FromSeconds(60);
                }
                return _client;
            }
        }
    }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment("Development");
        // Many gateways start in one test process: none asks the runtime for collections (BackgroundGcKeeperTests covers it).
        builder.UseSetting("Runtime:BackgroundGcKeepAlive", "00:00:00");
        // UseSetting, not ConfigureAppConfiguration: with minimal hosting, Program reads connection strings while
        // registering services, before late configuration sources are applied.
        foreach (var (key, value) in _settings)
        {
            builder.UseSetting(key, value);
        }
        builder.ConfigureLogging(logging => logging.SetMinimumLevel(LogLevel.Warning));
        if (configureServices is not null)
        {
            Microsoft.AspNetCore.TestHost.WebHostBuilderExtensions.ConfigureTestServices(builder, configureServices);
        }
    }

    public static HttpRequestMessage Chat(object body, string? key = GatewayFixture.DevKey)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = new StringContent(body as string ?? JsonSerializer.Serialize(body), Encoding.UTF8, "application/json"),
        };
        if (key is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }
        return request;
    }

    public Task<HttpResponseMessage> SendAsync(HttpRequestMessage request) =>
        Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, TestContext.Current.CancellationToken);

    /// <summary>Reads an SSE body into its data payloads (without the <c>data: </c> prefix).</summary>
    public static async Task<List<string>> ReadSseDataAsync(HttpResponseMessage response)
    {
        var data = new List<string>();
        await using var stream = await response.Content.ReadAsStreamAsync(TestContext.Current.CancellationToken);
        using var reader = new StreamReader(stream);
        while (await reader.ReadLineAsync(TestContext.Current.CancellationToken) is { } line)
        {
            if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                data.Add(line[6..]);
            }
        }
        return data;
    }

    public static async Task<JsonElement> ReadJsonAsync(HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        try
        {
            return JsonDocument.Parse(text).RootElement.Clone();
        }
        catch (JsonException)
        {
            throw new Xunit.Sdk.XunitException($"Not JSON (HTTP {(int)response.StatusCode}): {text}");
        }
    }
}
