using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using ModelGateway.Api.ChatCompletions;
using ModelGateway.Api.Configuration;
using ModelGateway.Api.Providers;
using ModelGateway.Api.Providers.Anthropic;
using ModelGateway.Api.Providers.LlamaCpp;
using ModelGateway.Api.Providers.OpenAICompatible;
using ModelGateway.Api.Routing;
using ModelGateway.Api.Tests.FakeUpstream;
using ModelGateway.Api.Tokenization;

namespace ModelGateway.Api.Tests.Providers;

/// <summary>
/// An upstream that answers every request with fixed bytes (a recorded fixture) and remembers what it was sent, so an
/// adapter's request and its translation of the answer can be checked without a network.
/// </summary>
internal sealed class StubUpstream(HttpStatusCode status, byte[] body, string contentType) : HttpMessageHandler
{
    public HttpRequestMessage? Request { get; private set; }

    public JsonObject? RequestBody { get; private set; }

    public Dictionary<string, string> ResponseHeaders { get; } = new(StringComparer.OrdinalIgnoreCase);

    public static StubUpstream Json(string json, HttpStatusCode status = HttpStatusCode.OK) =>
        new(status, Encoding.UTF8.GetBytes(json), "application/json");

    public static StubUpstream Fixture(string name, HttpStatusCode status = HttpStatusCode.OK) =>
        new(status, Encoding.UTF8.GetBytes(WireFixture.Text(name)),
            name.EndsWith(".sse", StringComparison.Ordinal) ? "text/event-stream" : "application/json");

    public static StubUpstream Sse(string body) => new(HttpStatusCode.OK, Encoding.UTF8.GetBytes(body), "text/event-stream");

    public HttpMessageInvoker Client() => new(this);

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        Request = request;
        if (request.Content is not null)
        {
            RequestBody = JsonNode.Parse(await request.Content.ReadAsByteArrayAsync(cancellationToken)) as JsonObject;
        }
        var response = new HttpResponseMessage(status) { Content = new ByteArrayContent(body), RequestMessage = request };
        response.Content.Headers.TryAddWithoutValidation("Content-Type", contentType);
        foreach (var (name, value) in ResponseHeaders)
        {
            response.Headers.TryAddWithoutValidation(name, value);
        }
        return response;
    }
}

internal static class ProviderTestKit
{
    public static IOptions<GatewayOptions> Options { get; } = Microsoft.Extensions.Options.Options.Create(new GatewayOptions());

    public static RouteTarget Target(string providerType, string model, string baseUrl = "http://upstream.test/", string? apiKey = "sk-upstream",
        int defaultMaxTokens = 1024, IReadOnlyDictionary<string, string>? headers = null) =>
        new("alias", new ProviderEndpoint("upstream", providerType, new Uri(baseUrl), apiKey, TimeSpan.FromSeconds(10),
            TimeSpan.FromSeconds(10), headers ?? new Dictionary<string, string>()), model, 1, new Prices(0, 0, 0), defaultMaxTokens);

    /// <summary>Counts the connections <paramref name="handler"/> opens; it still connects as by default (TCP, no delay).</summary>
    public static StrongBox<int> CountConnections(SocketsHttpHandler handler)
    {
        var count = new StrongBox<int>();
        handler.ConnectCallback = async (context, cancellationToken) =>
        {
            Interlocked.Increment(ref count.Value);
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(context.DnsEndPoint, cancellationToken);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        };
        return count;
    }

    /// <summary>The adapter of <paramref name="protocol"/> ("openai", "anthropic", "llamacpp") and a target of it on the fake upstream.</summary>
    public static (IProviderAdapter Adapter, RouteTarget Target) OnFake(FakeUpstreamApp fake, string protocol, string model) =>
        OnFake(fake.Client.BaseAddress!, protocol, model);

    /// <summary>The adapter of <paramref name="protocol"/> and a target of it on a fake upstream at <paramref name="fake"/>.</summary>
    public static (IProviderAdapter Adapter, RouteTarget Target) OnFake(Uri fake, string protocol, string model)
    {
        var (adapter, path, type) = protocol switch
        {
            "anthropic" => ((IProviderAdapter)new AnthropicAdapter(Options, TimeProvider.System), "anthropic/", ProviderTypes.Anthropic),
            "llamacpp" => (new LlamaCppAdapter(Options, new TokenCounter()), "llamacpp/", ProviderTypes.LlamaCpp),
            _ => (new OpenAICompatibleAdapter(Options), "openai/v1/", ProviderTypes.OpenAICompatible),
        };
        return (adapter, Target(type, model, baseUrl: new Uri(fake, path).ToString(), apiKey: "sk-fake"));
    }

    /// <summary>Streams "Hello big world" from <paramref name="model"/> on a fake upstream at <paramref name="fake"/> through <paramref name="http"/>.</summary>
    public static async Task<ProviderStream> StreamFromFakeAsync(HttpMessageInvoker http, Uri fake, string protocol, string model)
    {
        var (adapter, target) = OnFake(fake, protocol, model);
        var response = await adapter.SendAsync(new ProviderCall(Request("""
            {"model":"alias","stream":true,"messages":[{"role":"user","content":"Hello big world"}]}
            """), target, http), TestContext.Current.CancellationToken);
        return Assert.IsAssignableFrom<ProviderStream>(response);
    }

    /// <summary>Reads a stream's first event and lets it go, as a client who leaves does.</summary>
    public static async Task LeaveAfterFirstEventAsync(ProviderStream stream)
    {
        await using (var events = stream.ReadEventsAsync(TestContext.Current.CancellationToken).GetAsyncEnumerator(TestContext.Current.CancellationToken))
        {
            Assert.True(await events.MoveNextAsync());
        }
        stream.Dispose();
    }

    public static ChatRequest Request(string json)
    {
        var request = ChatRequest.Parse(Encoding.UTF8.GetBytes(json), out var error);
        Assert.True(request is not null, error?.Message);
        return request!;
    }

    public static ChatRequest Request(JsonObject body) => Request(body.ToJsonString());

    public static async Task<ProviderResponse> SendAsync(IProviderAdapter adapter, ChatRequest request, RouteTarget target, StubUpstream upstream)
    {
        using var http = upstream.Client();
        return await adapter.SendAsync(new ProviderCall(request, target, http), TestContext.Current.CancellationToken);
    }

    public static async Task<List<StreamEvent>> ReadAllAsync(ProviderResponse response)
    {
        var stream = Assert.IsAssignableFrom<ProviderStream>(response);
        var events = new List<StreamEvent>();
        await foreach (var e in stream.ReadEventsAsync(TestContext.Current.CancellationToken))
        {
            // An event's bytes are valid until the next is read (one buffer per stream): kept events keep a copy.
            events.Add(e with { Json = e.Json.ToArray() });
        }
        return events;
    }

    public static JsonObject Json(StreamEvent e) => (JsonObject)JsonNode.Parse(e.Json.Span)!;

    /// <summary>Asserts two JSON values are equal whatever the order of object keys, showing both when they are not.</summary>
    public static void AssertJsonEqual(JsonNode? expected, JsonNode? actual) =>
        Assert.True(JsonNode.DeepEquals(expected, actual), $"expected:\n{expected?.ToJsonString()}\nactual:\n{actual?.ToJsonString()}");
}
