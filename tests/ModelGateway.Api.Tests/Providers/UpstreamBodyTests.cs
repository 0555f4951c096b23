using System.Net;
using System.Text;
using ModelGateway.Api.Providers;

namespace ModelGateway.Api.Tests.Providers;

/// <summary>Reading a provider's stream event by event: every payload as sent, through one buffer per stream.</summary>
public sealed class UpstreamBodyTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static HttpResponseMessage Sse(string body) =>
        new(HttpStatusCode.OK) { Content = new ByteArrayContent(Encoding.UTF8.GetBytes(body)) };

    [Fact]
    public async Task Every_payload_arrives_whole_when_events_grow_and_shrink()
    {
        // Small, much larger (the buffer grows), small again, a payload over two data lines, and an empty one.
        string[] payloads = ["""{"a":1}""", new string('x', 5_000), """{"b":2}""", "line one\nline two", ""];
        var body = string.Concat(payloads.Select(p => string.Concat(p.Split('\n').Select(line => $"data: {line}\n")) + "\n"));
        using var response = Sse(": a comment\nevent: ping\ndata: {}\n\n" + body);

        var seen = new List<string>();
        await foreach (var data in UpstreamBody.ReadSseDataAsync(response, TimeSpan.FromSeconds(5), Ct))
        {
            seen.Add(Encoding.UTF8.GetString(data.Span)); // read before the next event, as every adapter does
        }

        Assert.Equal(["{}", .. payloads], seen);
    }

    [Fact]
    public async Task Reading_an_event_allocates_nothing_for_its_bytes()
    {
        const int events = 1_000;
        var payload = $$$"""{"choices":[{"delta":{"content":"{{{new string('w', 360)}}}"}}]}""";
        using var response = Sse(string.Concat(Enumerable.Repeat($"data: {payload}\n\n", events)));
        var lengths = 0L;

        // The body is in memory, so every read completes at once and the whole enumeration runs on this thread.
        var before = GC.GetAllocatedBytesForCurrentThread();
        await foreach (var data in UpstreamBody.ReadSseDataAsync(response, TimeSpan.FromSeconds(5), Ct))
        {
            lengths += data.Length;
        }
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal((long)events * payload.Length, lengths);
        // A copy per event would be over 400 bytes each; what remains is the stream's own set-up, paid once.
        Assert.True(allocated < events * 32, $"{allocated} bytes allocated for {events} events of {payload.Length} bytes");
    }
}
