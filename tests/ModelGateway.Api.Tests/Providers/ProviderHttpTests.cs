using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using Microsoft.Extensions.DependencyInjection;
using ModelGateway.Api.Hosting;
using ModelGateway.Api.Providers;
using ModelGateway.Api.Routing;
using ModelGateway.Api.Tests.Support;

namespace ModelGateway.Api.Tests.Providers;

/// <summary>Reading a provider's whole answer: bounded, with or without a declared length, and never silently cut.</summary>
public sealed class ProviderHttpTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static byte[] Bytes(int n) => Enumerable.Range(0, n).Select(i => (byte)(i * 7)).ToArray();

    /// <summary>
    /// A response whose body arrives through a pipe in 3,000-byte writes, as from a socket: the stream cannot seek, so the
    /// length is only what <paramref name="declaredLength"/> says.
    /// </summary>
    private static HttpResponseMessage Response(byte[] body, long? declaredLength = null)
    {
        var pipe = new Pipe();
        foreach (var chunk in body.Chunk(3_000))
        {
            pipe.Writer.Write(chunk);
        }
        pipe.Writer.Complete();
        var content = new StreamContent(pipe.Reader.AsStream());
        content.Headers.ContentLength = declaredLength;
        return new HttpResponseMessage(HttpStatusCode.OK) { Content = content };
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1_000)]
    [InlineData(100_000)]
    public async Task A_body_with_a_declared_length_is_read_whole(int size)
    {
        var expected = Bytes(size);
        using var response = Response(expected, size);
        Assert.Equal(expected, await ProviderHttp.ReadBoundedAsync(response, 1 << 20, TimeSpan.FromSeconds(5), Ct));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1_000)]
    [InlineData(16 * 1024)]
    [InlineData(100_000)] // past the first pooled buffer: it grows and the bytes are kept in order
    public async Task A_chunked_body_is_read_whole(int size)
    {
        var expected = Bytes(size);
        using var response = Response(expected);
        Assert.Null(response.Content.Headers.ContentLength);
        Assert.Equal(expected, await ProviderHttp.ReadBoundedAsync(response, 1 << 20, TimeSpan.FromSeconds(5), Ct));
    }

    [Fact]
    public async Task A_body_over_the_limit_is_refused_whether_declared_or_not()
    {
        using (var declared = Response(Bytes(5_000), 5_000))
        {
            await Assert.ThrowsAsync<ResponseTooLargeException>(() =>
                ProviderHttp.ReadBoundedAsync(declared, 4_096, TimeSpan.FromSeconds(5), Ct));
        }
        using var chunked = Response(Bytes(40_000));
        await Assert.ThrowsAsync<ResponseTooLargeException>(() =>
            ProviderHttp.ReadBoundedAsync(chunked, 20_000, TimeSpan.FromSeconds(5), Ct));
    }

    [Fact]
    public async Task A_body_shorter_than_its_declared_length_is_a_broken_answer()
    {
        using var response = Response(Bytes(500), 1_000);
        var ex = await Assert.ThrowsAsync<IOException>(() =>
            ProviderHttp.ReadBoundedAsync(response, 1 << 20, TimeSpan.FromSeconds(5), Ct));
        Assert.Contains("500 of its 1000 bytes", ex.Message);
    }
}

/// <summary>
/// The provider client's handler chain carries nothing per request that buys nothing: no logging handlers and no service
/// discovery (provider base URLs are concrete). Other clients keep discovery, which also shows the handler's name is right.
/// </summary>
public sealed class ProviderHttpClientTests(GatewayFixture fx) : IClassFixture<GatewayFixture>
{
    private List<string> Chain(string clientName)
    {
        var handler = fx.Gateway.Services.GetRequiredService<IHttpMessageHandlerFactory>().CreateHandler(clientName);
        var names = new List<string>();
        for (HttpMessageHandler? h = handler; h is not null; h = (h as DelegatingHandler)?.InnerHandler)
        {
            names.Add(h.GetType().FullName!);
        }
        return names;
    }

    [Fact]
    public void The_provider_client_has_no_logging_or_discovery_handler_and_others_keep_discovery()
    {
        var providers = Chain(ModelRouter.ProviderHttpClient);
        Assert.DoesNotContain(GatewayExtensions.ServiceDiscoveryHandlerType, providers);
        Assert.DoesNotContain(providers, n => n.StartsWith("Microsoft.Extensions.Http.Logging.", StringComparison.Ordinal));
        Assert.Contains(typeof(SocketsHttpHandler).FullName!, providers);

        var other = Chain("any-other-client");
        Assert.Contains(GatewayExtensions.ServiceDiscoveryHandlerType, other);
        Assert.Contains(other, n => n.StartsWith("Microsoft.Extensions.Http.Logging.", StringComparison.Ordinal));
    }
}
