using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using ModelGateway.Api.Routing;
using ModelGateway.Api.Tests.Support;

namespace ModelGateway.Api.Tests.Reliability;

/// <summary>
/// The gateway with a byte counter on its provider HttpClient: every byte it reads from an upstream response body is
/// counted, and alias <c>huge</c> streams 4 KiB chunks from the fake (64 MiB for tenant <c>bulk</c>, which has no output cap).
/// </summary>
public sealed class SlowReaderGateway : GatewayFixture
{
    public long UpstreamBytesRead => Interlocked.Read(ref _upstreamBytesRead);

    public const string BulkKey = "sk-bulk-0123456789abcdef";

    private long _upstreamBytesRead;

    protected override IEnumerable<KeyValuePair<string, string?>> ExtraSettings => new Dictionary<string, string?>
    {
        ["Gateway:Routes:huge:Targets:0:Provider"] = "openrouter",
        ["Gateway:Routes:huge:Targets:0:Model"] = "fault-huge@64",
        ["Gateway:Routes:huge:Targets:0:InputPerMillion"] = "1",
        ["Gateway:Routes:huge:Targets:0:OutputPerMillion"] = "2",
        ["Tenancy:Seed:1:Id"] = "bulk",
        ["Tenancy:Seed:1:ApiKeys:0"] = BulkKey,
    };

    protected override void ConfigureServices(IServiceCollection services) =>
        services.AddHttpClient(ModelRouter.ProviderHttpClient).AddHttpMessageHandler(() => new CountingHandler(this));

    private sealed class CountingHandler(SlowReaderGateway owner) : DelegatingHandler
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var response = await base.SendAsync(request, cancellationToken);
            var counted = new StreamContent(new CountingStream(await response.Content.ReadAsStreamAsync(cancellationToken), owner));
            foreach (var (name, values) in response.Content.Headers)
            {
                counted.Headers.TryAddWithoutValidation(name, values);
            }
            response.Content = counted;
            return response;
        }
    }

    private sealed class CountingStream(Stream inner, SlowReaderGateway owner) : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            Count(await inner.ReadAsync(buffer, cancellationToken));

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override int Read(byte[] buffer, int offset, int count) => Count(inner.Read(buffer, offset, count));

        private int Count(int n)
        {
            Interlocked.Add(ref owner._upstreamBytesRead, n);
            return n;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }
            base.Dispose(disposing);
        }
    }
}

/// <summary>
/// A client that reads a 64 MiB stream at a few KB per second must not make the gateway buffer the answer: the gateway
/// has to stop reading the provider when the client stops reading (Kestrel's response pipe, bounded by
/// MaxResponseBufferSize, makes the relay's flush wait; the relay does not read the next upstream event until then).
///
/// What is measured, and why: the bytes the gateway has read from the provider's response body (a counting handler on
/// its provider HttpClient) against the bytes the client has read. Their difference is everything the gateway holds or
/// has handed to the kernel for this stream: its pipe, the event being relayed, its socket's send buffer and the
/// client's (fixed, small) receive buffer. Managed-heap figures (GC.GetTotalMemory, GC.GetGCMemoryInfo) would be
/// blurred here: the fake upstream, the test and the gateway share one process and one heap, and a few buffered MiB could
/// hide in a heap that moves by tens of MiB between collections anyway. Bytes read versus bytes delivered is
/// exact, counts only the gateway, and fails loudly if the gateway reads ahead.
/// </summary>
public sealed class SlowReaderTests(SlowReaderGateway fx) : IClassFixture<SlowReaderGateway>
{
    private const int ChunkTokens = 16_384; // fault-huge sends one 4 KiB chunk per output token: 64 MiB
    private const long ReplyBytes = ChunkTokens * 4096L;

    /// <summary>
    /// How far the gateway may read ahead of the client: Linux's largest socket send buffer (net.ipv4.tcp_wmem, 4 MiB by
    /// default: the kernel, not the gateway, holds that) plus 1 MiB for Kestrel's response pipe (MaxResponseBufferSize,
    /// 64 KiB), the event being relayed, the client's 32 KiB receive buffer and its HttpClient's buffer.
    /// </summary>
    private const long MaxAhead = 5L * 1024 * 1024;

    [Fact]
    public async Task A_client_reading_a_few_KB_per_second_makes_the_gateway_stop_reading_the_provider()
    {
        var ct = TestContext.Current.CancellationToken;
        using var client = new HttpClient(new SocketsHttpHandler
        {
            MaxResponseDrainSize = 0,
            // A fixed receive buffer turns off Linux's autotuning (which would let the kernel take megabytes): what the
            // client's side can hold is then small and known.
            ConnectCallback = async (context, token) =>
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 32 * 1024, NoDelay = true };
                await socket.ConnectAsync(context.DnsEndPoint, token);
                return new NetworkStream(socket, ownsSocket: true);
            },
        })
        { BaseAddress = fx.Gateway.Client.BaseAddress, Timeout = TimeSpan.FromMinutes(2) };

        var upstreamBefore = fx.UpstreamBytesRead;
        using var request = GatewayApp.Chat(new { model = "huge", stream = true, max_tokens = ChunkTokens, messages = new[] { new { role = "user", content = "x" } } }, SlowReaderGateway.BulkKey);
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await using var stream = await response.Content.ReadAsStreamAsync(ct);

        // 8 s at 4 KiB every 250 ms: 16 KiB/s, about 128 KiB in all, 0.2 % of the answer.
        var buffer = new byte[4096];
        long clientBytes = 0;
        var samples = new List<(double Seconds, long Upstream, long Client)>();
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(8))
        {
            clientBytes += await stream.ReadAsync(buffer, ct);
            samples.Add((clock.Elapsed.TotalSeconds, fx.UpstreamBytesRead - upstreamBefore, clientBytes));
            await Task.Delay(250, ct);
        }
        var (_, upstreamSlow, clientSlow) = samples[^1];
        var (_, upstreamTwoSecondsBefore, clientTwoSecondsBefore) = samples.Last(s => s.Seconds <= clock.Elapsed.TotalSeconds - 2);
        var output = TestContext.Current.TestOutputHelper;
        output?.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"slow phase: client read {clientSlow / 1024.0:0} KiB in {clock.Elapsed.TotalSeconds:0.0} s; gateway read {upstreamSlow / 1024.0:0} KiB from the provider; "
            + $"ahead by {(upstreamSlow - clientSlow) / 1024.0:0} KiB; last 2 s: client +{(clientSlow - clientTwoSecondsBefore) / 1024.0:0} KiB, gateway +{(upstreamSlow - upstreamTwoSecondsBefore) / 1024.0:0} KiB"));

        // Bounded: the gateway is at most MaxAhead ahead of the client, not the 64 MiB answer it could read in a second.
        Assert.True(upstreamSlow - clientSlow < MaxAhead, $"gateway read {upstreamSlow} bytes upstream while the client read {clientSlow}");
        // Back-pressure, not just a slow provider: once the buffers are full the gateway reads at the client's pace.
        Assert.True(upstreamSlow - upstreamTwoSecondsBefore < (clientSlow - clientTwoSecondsBefore) + 512 * 1024,
            $"gateway read {upstreamSlow - upstreamTwoSecondsBefore} bytes upstream in the last 2 s; the client read {clientSlow - clientTwoSecondsBefore}");

        // And nothing was lost: read at full speed, the rest arrives and the stream ends properly.
        var rest = new MemoryStream();
        await stream.CopyToAsync(rest, ct);
        clientBytes += rest.Length;
        var tail = Encoding.ASCII.GetString(rest.GetBuffer(), (int)Math.Max(0, rest.Length - 300), (int)Math.Min(300, rest.Length));
        output?.WriteLine(string.Create(CultureInfo.InvariantCulture, $"whole stream: client {clientBytes / 1048576.0:0.0} MiB, gateway read {(fx.UpstreamBytesRead - upstreamBefore) / 1048576.0:0.0} MiB upstream"));
        Assert.True(tail.EndsWith("data: [DONE]\n\n", StringComparison.Ordinal), tail);
        Assert.True(clientBytes > ReplyBytes, $"client read {clientBytes} bytes");
    }
}
