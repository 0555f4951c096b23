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

    private static HttpResponseMessage Response(Stream body, long? declaredLength = null)
    {
        var content = new StreamContent(body);
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
        using var response = Response(new TrickleStream(expected), size);
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
        using var response = Response(new TrickleStream(expected));
        Assert.Null(response.Content.Headers.ContentLength);
        Assert.Equal(expected, await ProviderHttp.ReadBoundedAsync(response, 1 << 20, TimeSpan.FromSeconds(5), Ct));
    }

    [Fact]
    public async Task A_body_over_the_limit_is_refused_whether_declared_or_not()
    {
        using (var declared = Response(new TrickleStream(Bytes(5_000)), 5_000))
        {
            await Assert.ThrowsAsync<ResponseTooLargeException>(() =>
                ProviderHttp.ReadBoundedAsync(declared, 4_096, TimeSpan.FromSeconds(5), Ct));
        }
        using var chunked = Response(new TrickleStream(Bytes(40_000)));
        await Assert.ThrowsAsync<ResponseTooLargeException>(() =>
            ProviderHttp.ReadBoundedAsync(chunked, 20_000, TimeSpan.FromSeconds(5), Ct));
    }

    [Fact]
    public async Task A_body_shorter_than_its_declared_length_is_a_broken_answer()
    {
        using var response = Response(new TrickleStream(Bytes(500)), 1_000);
        var ex = await Assert.ThrowsAsync<IOException>(() =>
            ProviderHttp.ReadBoundedAsync(response, 1 << 20, TimeSpan.FromSeconds(5), Ct));
        Assert.Contains("500 of its 1000 bytes", ex.Message);
    }

    /// <summary>A non-seekable stream that hands out at most 3,000 bytes per read, as a socket would.</summary>
    private sealed class TrickleStream(byte[] data) : Stream
    {
        private int _position;
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));
        public override int Read(Span<byte> buffer)
        {
            var n = Math.Min(Math.Min(buffer.Length, 3_000), data.Length - _position);
            data.AsSpan(_position, n).CopyTo(buffer);
            _position += n;
            return n;
        }
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            ValueTask.FromResult(Read(buffer.Span));
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
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
