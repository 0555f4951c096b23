using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;
using Microsoft.Extensions.DependencyInjection;
using ModelGateway.Testing;

namespace ModelGateway.AppHost.Tests;

/// <summary>
/// The whole application through the AppHost: DCP starts Redis and Postgres as local processes (no container engine
/// here), the fake upstream, Api, Policy and Realtime; a streaming chat request goes through the Api to the fake.
/// </summary>
public sealed class AppHostFixture : IAsyncLifetime
{
    public DistributedApplication App { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        var ct = CancellationToken.None;
        var builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.ModelGateway_AppHost>(
            [
                "--Infrastructure=local",
                $"--ApiPort={FreePort.Get()}",
                $"--TurnPort={FreePort.Get()}",
                "--environment=Development",
                // The dashboard on, as under scripts/run.sh (http, anonymous), so a test can read its telemetry API.
                $"--ASPNETCORE_URLS=http://127.0.0.1:{FreePort.Get()}",
                $"--ASPIRE_DASHBOARD_OTLP_ENDPOINT_URL=http://127.0.0.1:{FreePort.Get()}",
                $"--ASPIRE_RESOURCE_SERVICE_ENDPOINT_URL=http://127.0.0.1:{FreePort.Get()}",
                "--ASPIRE_ALLOW_UNSECURED_TRANSPORT=true",
                "--ASPIRE_DASHBOARD_UNSECURED_ALLOW_ANONYMOUS=true",
            ], (options, _) =>
            {
                options.DisableDashboard = false;
                options.AllowUnsecuredTransport = true;
            }, ct);
        builder.Services.ConfigureHttpClientDefaults(http => { }); // no resilience handler: it would cut streams at 10 s
        App = await builder.BuildAsync(ct);
        using var startup = CancellationTokenSource.CreateLinkedTokenSource(ct);
        startup.CancelAfter(TimeSpan.FromMinutes(4));
        await App.StartAsync(startup.Token);
        await App.ResourceNotifications.WaitForResourceHealthyAsync("api", startup.Token);
    }

    public async ValueTask DisposeAsync()
    {
        await App.StopAsync();
        await App.DisposeAsync();
    }
}

/// <summary>One application for all the tests below: starting it takes most of a minute.</summary>
public sealed class AppHostTests(AppHostFixture fixture) : IClassFixture<AppHostFixture>
{
    private DistributedApplication App => fixture.App;

    /// <summary>A chat request with the Development tenant's key.</summary>
    private static HttpRequestMessage Chat(string json)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "sk-dev-local");
        return request;
    }

    [Fact]
    public async Task A_streaming_chat_request_reaches_the_fake_upstream_and_ends_with_done()
    {
        var ct = TestContext.Current.CancellationToken;
        using var client = App.CreateHttpClient("api", "http");
        using var request = Chat("""{"model":"chat-default","stream":true,"messages":[{"role":"user","content":"hi"}]}""");
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        var body = await response.Content.ReadAsStringAsync(ct);
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        Assert.Contains("\"content\":\"Echo:\"", body.Replace(" ", ""), StringComparison.Ordinal);
        Assert.EndsWith("data: [DONE]", body.TrimEnd(), StringComparison.Ordinal);
        Assert.Matches("^[0-9a-f]{32}$", Assert.Single(response.Headers.GetValues("x-trace-id")));
    }

    [Fact]
    public async Task A_non_streaming_request_answers_a_chat_completion_through_each_default_alias()
    {
        var ct = TestContext.Current.CancellationToken;
        using var client = App.CreateHttpClient("api", "http");
        foreach (var alias in new[] { "chat-default", "chat-anthropic", "chat-local" })
        {
            using var request = Chat($$"""{"model":"{{alias}}","messages":[{"role":"user","content":"hi"}]}""");
            using var response = await client.SendAsync(request, ct);
            var body = await response.Content.ReadAsStringAsync(ct);
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"{alias}: {body}");
            Assert.Contains("\"chat.completion\"", body, StringComparison.Ordinal);
            Assert.Contains("Echo: hi", body, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_streamed_request_is_one_trace_in_the_dashboard_spanning_the_api_and_the_upstream_and_is_in_the_trace_history()
    {
        var ct = TestContext.Current.CancellationToken;
        using var client = App.CreateHttpClient("api", "http");
        using var request = Chat("""{"model":"chat-default","stream":true,"max_tokens":50,"temperature":0.2,"messages":[{"role":"user","content":"trace me"}]}""");
        using var response = await client.SendAsync(request, ct);
        var body = await response.Content.ReadAsStringAsync(ct);
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        var traceId = Assert.Single(response.Headers.GetValues("x-trace-id"));

        // The dashboard's telemetry API (what its Traces page shows): spans arrive over OTLP within a few seconds.
        // The dashboard's own URLs, as it reports them (the testing host gives it ports of its choosing).
        Assert.True(App.ResourceNotifications.TryGetCurrentState("aspire-dashboard", out var dashboardState), "the dashboard runs");
        var dashboardUrls = dashboardState.Snapshot.Urls.Select(u => new Uri(u.Url)).ToList();
        Assert.NotEmpty(dashboardUrls);
        using var dashboard = new HttpClient();
        var spans = new List<(string Service, string Name, int Kind, Dictionary<string, string> Attributes)>();
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            foreach (var url in dashboardUrls)
            {
                spans = await DashboardSpansAsync(dashboard, new Uri(url, $"/api/telemetry/traces/{traceId}"), ct);
                if (spans.Count > 0)
                {
                    break;
                }
            }
            // Each service exports its spans in batches, and the api's server span ends after its client spans: it can
            // arrive a batch later, so wait for all three kinds before asserting.
            if (spans.Any(s => s.Service == "fake-upstream") && spans.Any(s => s.Name.StartsWith("chat ", StringComparison.Ordinal))
                && spans.Any(s => s.Service == "api" && s.Kind == 2))
            {
                break;
            }
            await Task.Delay(500, ct);
        }
        Assert.True(spans.Count > 0, $"no spans for trace {traceId} from the dashboard at {string.Join(", ", dashboardUrls)}");
        var chat = Assert.Single(spans, s => s.Service == "api" && s.Name == "chat openai/gpt-4o-mini");
        Assert.Equal(3, chat.Kind); // OTLP SPAN_KIND_CLIENT
        Assert.Equal("chat", chat.Attributes["gen_ai.operation.name"]);
        Assert.Equal("openai", chat.Attributes["gen_ai.provider.name"]);
        Assert.Equal("50", chat.Attributes["gen_ai.request.max_tokens"]);
        Assert.Equal("dev", chat.Attributes["model_gateway.tenant.id"]);
        Assert.True(int.Parse(chat.Attributes["gen_ai.usage.output_tokens"], System.Globalization.CultureInfo.InvariantCulture) > 0);
        Assert.Contains(spans, s => s.Service == "api" && s.Kind == 2 && s.Name == "POST /v1/chat/completions");
        Assert.Contains(spans, s => s.Service == "fake-upstream" && s.Kind == 2);

        // And in the gateway's own trace history (written in batches: allow it a moment).
        var traces = "";
        for (var i = 0; i < 40 && !traces.Contains(traceId, StringComparison.Ordinal); i++)
        {
            await Task.Delay(250, ct);
            using var again = new HttpRequestMessage(HttpMethod.Get, "/api/traces?limit=20");
            again.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "sk-dev-local");
            using var tracesResponse = await client.SendAsync(again, ct);
            traces = await tracesResponse.Content.ReadAsStringAsync(ct);
        }
        Assert.Contains(traceId, traces, StringComparison.Ordinal);
    }

    private static async Task<List<(string Service, string Name, int Kind, Dictionary<string, string> Attributes)>> DashboardSpansAsync(
        HttpClient dashboard, Uri trace, CancellationToken ct)
    {
        var result = new List<(string, string, int, Dictionary<string, string>)>();
        HttpResponseMessage response;
        try
        {
            response = await dashboard.GetAsync(trace, ct);
        }
        catch (HttpRequestException)
        {
            return result; // the dashboard starts beside the application and may not listen yet
        }
        using var _ = response;
        if (!response.IsSuccessStatusCode)
        {
            return result;
        }
        using var json = System.Text.Json.JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct));
        if (!json.RootElement.TryGetProperty("data", out var data) || !data.TryGetProperty("resourceSpans", out var resourceSpans))
        {
            return result;
        }
        foreach (var rs in resourceSpans.EnumerateArray())
        {
            var service = Attributes(rs.GetProperty("resource")).GetValueOrDefault("service.name", "");
            foreach (var scope in rs.GetProperty("scopeSpans").EnumerateArray())
            {
                foreach (var span in scope.GetProperty("spans").EnumerateArray())
                {
                    result.Add((service, span.GetProperty("name").GetString()!, span.GetProperty("kind").GetInt32(), Attributes(span)));
                }
            }
        }
        return result;
    }

    private static Dictionary<string, string> Attributes(System.Text.Json.JsonElement owner)
    {
        var d = new Dictionary<string, string>();
        if (owner.TryGetProperty("attributes", out var attributes))
        {
            foreach (var a in attributes.EnumerateArray())
            {
                var value = a.GetProperty("value").EnumerateObject().FirstOrDefault().Value;
                d[a.GetProperty("key").GetString()!] = value.ValueKind == System.Text.Json.JsonValueKind.String ? value.GetString()! : value.ToString();
            }
        }
        return d;
    }

    [Theory]
    [InlineData("policy")]
    [InlineData("realtime")]
    [InlineData("api")]
    public async Task Services_report_healthy(string resource)
    {
        var ct = TestContext.Current.CancellationToken;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromMinutes(2));
        await App.ResourceNotifications.WaitForResourceHealthyAsync(resource, timeout.Token);
        using var client = App.CreateHttpClient(resource, "http");
        using var response = await client.GetAsync("/health", ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }
}
