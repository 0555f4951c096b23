using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ModelGateway.Api.Tests.Support;

namespace ModelGateway.Api.Tests.Security;

/// <summary>Every log line of every level, with its structured state, scopes and exception.</summary>
internal sealed class CapturingLoggerProvider : ILoggerProvider, ISupportExternalScope
{
    public ConcurrentQueue<string> Lines { get; } = new();
    private IExternalScopeProvider _scopes = new LoggerExternalScopeProvider();

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void SetScopeProvider(IExternalScopeProvider scopeProvider) => _scopes = scopeProvider;

    public void Dispose()
    {
    }

    private sealed class Logger(CapturingLoggerProvider owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => owner._scopes.Push(state);

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var line = new StringBuilder($"{logLevel} {category}: {formatter(state, exception)} {exception}");
            if (state is IEnumerable<KeyValuePair<string, object?>> pairs)
            {
                foreach (var (k, v) in pairs)
                {
                    line.Append(' ').Append(k).Append('=').Append(v);
                }
            }
            owner._scopes.ForEachScope((scope, sb) => sb.Append(" scope=").Append(scope), line);
            owner.Lines.Enqueue(line.ToString());
        }
    }
}

/// <summary>
/// Keys never reach logs or traces: with every log category at Trace and every ActivitySource listened to, requests with
/// valid, invalid, revoked and admin keys (and calls to providers that carry provider keys) leave no key string anywhere.
/// </summary>
public sealed class SecretLeakTests : IAsyncLifetime
{
    private const string ProviderKey = "sk-or-provider-secret-7f3a9c1d";
    private const string AnthropicKey = "sk-ant-provider-secret-55e0b2";
    private const string TenantKey = "sk-leaktest-valid-1a2b3c4d5e";
    private const string InvalidKey = "sk-leaktest-invalid-9z8y7x6w";

    private readonly CapturingLoggerProvider _logs = new();
    private readonly ConcurrentQueue<string> _spans = new();
    private readonly GatewayFixture _stores = new();
    private ActivityListener? _listener;
    private GatewayApp _app = null!;

    public async ValueTask InitializeAsync()
    {
        await _stores.InitializeAsync();
        _listener = new ActivityListener
        {
            ShouldListenTo = _ => true,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a => _spans.Enqueue(Describe(a)),
        };
        ActivitySource.AddActivityListener(_listener);
        var settings = GatewayFixture.BaseSettings(_stores.Fake.Client.BaseAddress!.ToString().TrimEnd('/'),
            await _stores.Postgres.CreateDatabaseAsync("leak"), _stores.Redis.ConnectionString);
        settings["Gateway:Providers:openrouter:ApiKey"] = ProviderKey;
        settings["Gateway:Providers:anthropic:ApiKey"] = AnthropicKey;
        settings["Tenancy:Seed:1:Id"] = "leaky";
        settings["Tenancy:Seed:1:ApiKeys:0"] = TenantKey;
        settings["Logging:LogLevel:Default"] = "Trace";
        settings["Logging:LogLevel:Microsoft.AspNetCore"] = "Trace";
        settings["Logging:LogLevel:System.Net.Http.HttpClient"] = "Trace";
        _app = new GatewayApp(settings, s => s.AddLogging(b => b.AddProvider(_logs).SetMinimumLevel(LogLevel.Trace)));
        _ = _app.Client;
    }

    public async ValueTask DisposeAsync()
    {
        _listener?.Dispose();
        await _app.DisposeAsync();
        await _stores.DisposeAsync();
    }

    [Fact]
    public async Task No_key_of_any_kind_appears_in_logs_or_spans()
    {
        var ct = TestContext.Current.CancellationToken;
        var hi = new[] { new { role = "user", content = "hello there" } };
        var secrets = new List<string> { ProviderKey, AnthropicKey, TenantKey, InvalidKey, GatewayFixture.AdminKey };

        Assert.Equal(HttpStatusCode.OK, (await SendAsync(GatewayApp.Chat(new { model = "chat-default", messages = hi }, TenantKey))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(GatewayApp.Chat(new { model = "chat-default", stream = true, messages = hi }, TenantKey))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(GatewayApp.Chat(new { model = "chat-anthropic", messages = hi }, TenantKey))).StatusCode);
        Assert.NotEqual(HttpStatusCode.OK, (await SendAsync(GatewayApp.Chat(new { model = "fault-500", messages = hi }, TenantKey))).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await SendAsync(GatewayApp.Chat(new { model = "chat-default", messages = hi }, InvalidKey))).StatusCode);

        // A key issued, used, revoked, used again.
        using var issue = new HttpRequestMessage(HttpMethod.Post, "/api/admin/tenants/leaky/keys") { Content = JsonContent.Create(new { }) };
        issue.Headers.Authorization = new AuthenticationHeaderValue("Bearer", GatewayFixture.AdminKey);
        var issued = await GatewayApp.ReadJsonAsync(await SendAsync(issue));
        var revocable = issued.GetProperty("key").GetString()!;
        secrets.Add(revocable);
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(GatewayApp.Chat(new { model = "chat-default", messages = hi }, revocable))).StatusCode);
        using var revoke = new HttpRequestMessage(HttpMethod.Delete, $"/api/admin/tenants/leaky/keys/{issued.GetProperty("id").GetString()}");
        revoke.Headers.Authorization = new AuthenticationHeaderValue("Bearer", GatewayFixture.AdminKey);
        Assert.Equal(HttpStatusCode.NoContent, (await SendAsync(revoke)).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await SendAsync(GatewayApp.Chat(new { model = "chat-default", messages = hi }, revocable))).StatusCode);

        foreach (var (path, key) in new[] { ("/api/admin/tenants", GatewayFixture.AdminKey), ("/api/admin/tenants", TenantKey),
                     ("/api/admin/tenants", GatewayFixture.AdminKey + "x"), ("/api/traces", TenantKey), ("/api/stats", InvalidKey), ("/v1/models", TenantKey) })
        {
            using var get = new HttpRequestMessage(HttpMethod.Get, path);
            get.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
            await SendAsync(get);
        }
        secrets.Add(GatewayFixture.AdminKey + "x");

        await Task.Delay(500, ct); // spans of the last requests end after their responses
        var logs = _logs.Lines.ToArray();
        var spans = _spans.ToArray();
        TestContext.Current.TestOutputHelper?.WriteLine($"scanned {logs.Length} log lines and {spans.Length} spans");
        // The capture saw the traffic (else the scan proves nothing): the access log's lines and the provider calls' client
        // spans. (The provider HttpClient has no logging handlers, so its request headers are never logged at any level.)
        Assert.Contains(logs, l => l.Contains("/v1/chat/completions", StringComparison.Ordinal));
        Assert.Contains(spans, s => s.Contains("/v1/chat/completions", StringComparison.Ordinal));
        Assert.Contains(spans, s => s.Contains("gen_ai", StringComparison.Ordinal));
        foreach (var secret in secrets)
        {
            Assert.DoesNotContain(logs, l => l.Contains(secret, StringComparison.Ordinal));
            Assert.DoesNotContain(spans, s => s.Contains(secret, StringComparison.Ordinal));
        }
    }

    private async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request)
    {
        var response = await _app.Client.SendAsync(request, TestContext.Current.CancellationToken);
        var body = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        // Provider keys never reach clients either.
        Assert.DoesNotContain(ProviderKey, body, StringComparison.Ordinal);
        Assert.DoesNotContain(AnthropicKey, body, StringComparison.Ordinal);
        Assert.DoesNotContain(response.Headers.Concat(response.Content.Headers), h => h.Value.Any(v => v.Contains(ProviderKey, StringComparison.Ordinal)));
        return response;
    }

    private static string Describe(Activity a)
    {
        var sb = new StringBuilder($"{a.Source.Name} {a.DisplayName} {a.OperationName} {a.StatusDescription}");
        foreach (var (k, v) in a.TagObjects)
        {
            sb.Append(' ').Append(k).Append('=').Append(v);
        }
        foreach (var e in a.Events)
        {
            sb.Append(" event=").Append(e.Name);
            foreach (var (k, v) in e.Tags)
            {
                sb.Append(' ').Append(k).Append('=').Append(v);
            }
        }
        foreach (var (k, v) in a.Baggage)
        {
            sb.Append(" baggage ").Append(k).Append('=').Append(v);
        }
        return sb.ToString();
    }
}
