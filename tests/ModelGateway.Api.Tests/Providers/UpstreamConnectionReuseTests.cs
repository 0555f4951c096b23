using System.Runtime.CompilerServices;
using ModelGateway.Api.Providers;
using ModelGateway.Api.Tests.FakeUpstream;
using static ModelGateway.Api.Tests.Providers.ProviderTestKit;

namespace ModelGateway.Api.Tests.Providers;

/// <summary>
/// The providers' connections, through the handler the gateway uses (<see cref="ProviderHttp.CreateHandler"/>) with its
/// connections counted, against the fake upstream over loopback. A stream read to its last event keeps its connection for
/// the next call even when its body ends after a pause (fault-late-end: to a remote provider a new connection is a TCP and
/// TLS handshake); a stream left before its end closes it, so the provider stops at once.
/// </summary>
public sealed class UpstreamConnectionReuseTests(FakeUpstreamApp fake) : IClassFixture<FakeUpstreamApp>
{
    public static TheoryData<string> Protocols => new() { "openai", "anthropic", "llamacpp" };

    private StrongBox<int> _connections = new();

    private HttpMessageInvoker CountingClient()
    {
        var handler = ProviderHttp.CreateHandler();
        _connections = CountConnections(handler);
        return new HttpMessageInvoker(handler);
    }

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task A_stream_read_to_its_last_event_leaves_its_connection_to_the_next_call_though_its_body_ends_late(string protocol)
    {
        using var http = CountingClient();
        for (var call = 0; call < 3; call++)
        {
            var stream = await StreamFromFakeAsync(http, fake.Client.BaseAddress!, protocol, "fault-late-end@150");
            var events = await ReadAllAsync(stream);
            Assert.Equal("Echo: Hello big world", string.Concat(events.Select(e => e.ContentDelta)));
            stream.Dispose();
            // The end of the body arrives ~150 ms after the last event; the connection is pooled once it has been read.
            await stream.Released.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
        }

        Assert.Equal(1, _connections.Value);
    }

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task A_stream_left_before_its_end_closes_its_connection_at_once(string protocol)
    {
        using var http = CountingClient();
        var stream = await StreamFromFakeAsync(http, fake.Client.BaseAddress!, protocol, "fault-slow-chunks@300");
        await LeaveAfterFirstEventAsync(stream);

        // Let go at once (nothing is read to keep the connection), so the next call needs a connection of its own.
        Assert.True(stream.Released.IsCompleted);
        var next = await StreamFromFakeAsync(http, fake.Client.BaseAddress!, protocol, "fake-model");
        await ReadAllAsync(next);
        next.Dispose();
        Assert.Equal(2, _connections.Value);
    }
}
