using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging.Abstractions;
using ModelGateway.Api.ChatCompletions;
using ModelGateway.Api.Providers;
using ModelGateway.Api.Streaming;

namespace ModelGateway.Api.Tests.Streaming;

public sealed class SseRelayTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_relayed_stream_keeps_its_text_until_it_is_disposed_and_the_next_stream_starts_empty()
    {
        var (first, body) = await RelayAsync("alpha ", "beta");
        Assert.True(first.Completed);
        Assert.Equal("alpha beta", first.Content.ToString());
        Assert.EndsWith("data: [DONE]\n\n", body, StringComparison.Ordinal);
        Assert.Equal(3, body.Split("data: ").Length - 1); // two chunks, then [DONE]
        first.Dispose();
        Assert.Throws<ObjectDisposedException>(() => first.Content);
        first.Dispose(); // twice is harmless: the builder went back to the pool once

        // Builders are pooled: whichever the next stream gets, it holds only that stream's text.
        var (second, _) = await RelayAsync("gamma");
        using (second)
        {
            Assert.Equal("gamma", second.Content.ToString());
        }
    }

    [Fact]
    public void An_outcome_writes_its_text_into_a_pooled_builder_instead_of_growing_one_of_its_own()
    {
        // 4,000 characters in 200 pieces: a builder of its own grows to ~16 KB of character arrays for it. A pooled one that
        // held as much before has the room already. The pool is the process's, shared with tests streaming in parallel,
        // so the smallest of five tries is what is judged (another stream can take the warmed builder once, not every time).
        var piece = new string('x', 20);
        var smallest = long.MaxValue;
        for (var attempt = 0; attempt < 5; attempt++)
        {
            using (var warm = new SseRelay.Outcome())
            {
                Fill(warm, piece);
            }
            var before = GC.GetAllocatedBytesForCurrentThread();
            using (var outcome = new SseRelay.Outcome())
            {
                Fill(outcome, piece);
                Assert.Equal(4_000, outcome.Content.Length);
            }
            smallest = Math.Min(smallest, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        Assert.True(smallest < 1024, $"{smallest} bytes allocated for a 4,000-character answer"); // a builder of its own: ~16 KB

        static void Fill(SseRelay.Outcome outcome, string piece)
        {
            for (var i = 0; i < 200; i++)
            {
                outcome.Content.Append(piece);
            }
        }
    }

    private static async Task<(SseRelay.Outcome Outcome, string Body)> RelayAsync(params string[] deltas)
    {
        var request = ChatRequest.Parse("""{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"""u8.ToArray(), out var error)
            ?? throw new InvalidOperationException(error!.Message);
        var context = new DefaultHttpContext();
        var sink = new MemoryStream();
        context.Features.Set<IHttpResponseBodyFeature>(new StreamResponseBodyFeature(sink));
        await using var events = deltas.Select(d => new StreamEvent(StreamEventKind.Chunk,
            Encoding.UTF8.GetBytes($$$"""{"choices":[{"index":0,"delta":{"content":"{{{d}}}"}}]}"""), ContentDelta: d))
            .ToAsyncEnumerable().GetAsyncEnumerator(Ct);
        var hasFirst = await events.MoveNextAsync();
        var outcome = await SseRelay.RelayAsync(context, request, events, hasFirst, NullLogger.Instance);
        await context.Response.BodyWriter.FlushAsync(Ct);
        return (outcome, Encoding.UTF8.GetString(sink.ToArray()));
    }
}
