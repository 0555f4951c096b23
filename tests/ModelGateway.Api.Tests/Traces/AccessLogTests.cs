using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using ModelGateway.Api.Hosting;

namespace ModelGateway.Api.Tests.Traces;

/// <summary>The access log line: one per request, the fields operators filter on, never keys, query strings or content.</summary>
public sealed class AccessLogTests
{
    [Fact]
    public async Task One_structured_line_per_request_without_keys_or_query()
    {
        var logger = new CapturingLogger();
        var middleware = new AccessLogMiddleware(context =>
        {
            var feature = context.Features.Get<AccessLogFeature>()!;
            (feature.Tenant, feature.Alias) = ("acme", "chat-default");
            context.Response.StatusCode = 429;
            return Task.CompletedTask;
        }, logger);
        var http = new DefaultHttpContext();
        http.Request.Method = "POST";
        http.Request.Path = "/v1/chat/completions";
        http.Request.QueryString = new QueryString("?api_key=sk-in-query");
        http.Request.Headers.Authorization = "Bearer sk-secret-key";

        await middleware.InvokeAsync(http);

        var (level, state, message) = Assert.Single(logger.Entries);
        Assert.Equal(LogLevel.Information, level);
        var fields = state.ToDictionary(kv => kv.Key, kv => kv.Value);
        Assert.Equal("POST", fields["Method"]);
        Assert.Equal("/v1/chat/completions", fields["Path"]);
        Assert.Equal(429, fields["StatusCode"]);
        Assert.Equal("acme", fields["Tenant"]);
        Assert.Equal("chat-default", fields["Alias"]);
        Assert.IsType<double>(fields["LatencyMs"]);
        Assert.False(string.IsNullOrEmpty((string?)fields["TraceId"]));
        Assert.DoesNotContain("sk-", message, StringComparison.Ordinal);
    }

    private sealed class CapturingLogger : ILogger<AccessLogMiddleware>
    {
        public List<(LogLevel Level, IReadOnlyList<KeyValuePair<string, object?>> State, string Message)> Entries { get; } = [];

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            // Copied now: the generated logger's state object is pooled and reset once Log returns.
            Entries.Add((logLevel, [.. (IReadOnlyList<KeyValuePair<string, object?>>)state!], formatter(state, exception)));
    }
}
