extern alias FakeUpstream;

using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.Logging;

namespace ModelGateway.Api.Tests.FakeUpstream;

/// <summary>
/// The fake upstream in process, one instance per test class (its request log, stats and fault
/// counters are per instance, so classes do not see each other's traffic). It runs on Kestrel over
/// loopback, not TestServer: connection aborts, flushes and cut streams must behave as on a real
/// socket (TestServer drops data that was flushed but not yet read when a request is aborted).
/// </summary>
public sealed class FakeUpstreamApp : WebApplicationFactory<FakeUpstream::Program>
{
    public FakeUpstreamApp()
    {
        UseKestrel(k => k.Listen(System.Net.IPAddress.Loopback, 0)); // not UseKestrel(0): it races Kestrel's bind (dotnet/aspnetcore#67714)
    }

    public const string OpenAIPath = "/openai/v1/chat/completions";
    public const string AnthropicPath = "/anthropic/v1/messages";
    public const string LlamaCppPath = "/llamacpp/v1/chat/completions";

    // Started under the assembly's one start gate (see TestHostStart).

    private HttpClient? _client;

    /// <summary>What the gateway's router sends through: a handler chain, no <see cref="HttpClient"/> (absolute URIs, body unbuffered).</summary>
    public HttpMessageInvoker Invoker { get; } = new(new SocketsHttpHandler());

    public HttpClient Client
    {
        get
        {
            lock (Support.TestHostStart.Gate)
            {
                return _client ??= CreateClient();
            }
        }
    }

    public static string PathOf(string protocol) => protocol switch
    {
        "openai" => OpenAIPath,
        "anthropic" => AnthropicPath,
        _ => LlamaCppPath,
    };

    /// <summary>A POST with a JSON body; Anthropic requests get the headers the real API requires unless told otherwise.</summary>
    public static HttpRequestMessage CreateRequest(string path, string json, bool anthropicHeaders = true)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path)
        {
            Content = new StringContent(json, Encoding.UTF8, new MediaTypeHeaderValue("application/json")),
        };
        if (anthropicHeaders && path == AnthropicPath)
        {
            request.Headers.Add("x-api-key", "sk-ant-test");
            request.Headers.Add("anthropic-version", "2023-06-01");
        }
        return request;
    }

    /// <summary>Returns once the headers arrived, so streams can be read as they come.</summary>
    public Task<HttpResponseMessage> PostAsync(string path, string json) =>
        Client.SendAsync(CreateRequest(path, json), HttpCompletionOption.ResponseHeadersRead, TestContext.Current.CancellationToken);

    public async Task<JsonElement> PostJsonAsync(string path, string json, int expectedStatus = 200)
    {
        using var response = await PostAsync(path, json);
        var body = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.True(expectedStatus == (int)response.StatusCode, $"expected {expectedStatus}, got {(int)response.StatusCode}: {body}");
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    public async Task<List<SseEvent>> PostStreamAsync(string path, string json)
    {
        using var response = await PostAsync(path, json);
        var body = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.True(response.IsSuccessStatusCode, body);
        Assert.StartsWith("text/event-stream", response.Content.Headers.ContentType?.ToString());
        return Sse.Parse(body);
    }

    protected override void ConfigureWebHost(IWebHostBuilder builder) =>
        builder.ConfigureLogging(logging => logging.SetMinimumLevel(LogLevel.Warning));

    protected override void Dispose(bool disposing)
    {
        _client?.Dispose();
        Invoker.Dispose();
        base.Dispose(disposing);
    }
}
