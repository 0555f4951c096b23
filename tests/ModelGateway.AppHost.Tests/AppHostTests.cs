using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Aspire.Hosting;
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
            ], ct);
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

    [Fact]
    public async Task A_streaming_chat_request_reaches_the_fake_upstream_and_ends_with_done()
    {
        var ct = TestContext.Current.CancellationToken;
        using var client = App.CreateHttpClient("api", "http");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = new StringContent(
                """{"model":"chat-default","stream":true,"messages":[{"role":"user","content":"hi"}]}""",
                Encoding.UTF8, "application/json"),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "sk-dev-local");
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
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
            {
                Content = new StringContent($$"""{"model":"{{alias}}","messages":[{"role":"user","content":"hi"}]}""", Encoding.UTF8, "application/json"),
            };
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "sk-dev-local");
            using var response = await client.SendAsync(request, ct);
            var body = await response.Content.ReadAsStringAsync(ct);
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"{alias}: {body}");
            Assert.Contains("\"chat.completion\"", body, StringComparison.Ordinal);
            Assert.Contains("Echo: hi", body, StringComparison.Ordinal);
        }
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
