using System.Buffers;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ModelGateway.Api.Providers;

/// <summary>Reading a provider's successful answer, shared by every adapter: a bounded JSON body, or an SSE stream.</summary>
internal static class UpstreamBody
{
    /// <summary>A body as a JSON object; throws <see cref="JsonException"/> when it is not one.</summary>
    public static JsonObject ParseObject(byte[] body) =>
        JsonNode.Parse(body) as JsonObject ?? throw new JsonException("The provider's answer is not a JSON object.");

    /// <summary>
    /// Reads a non-streaming answer and hands its bytes to <paramref name="read"/>, whose <see cref="JsonException"/> means the
    /// answer is not valid. A body that is too large, too slow, not valid or cut off comes back as a <see cref="ProviderFailure"/>
    /// (nothing has reached the client yet).
    /// </summary>
    public static async Task<(T? Body, ProviderFailure? Failure)> ReadJsonAsync<T>(HttpResponseMessage response,
        int maxBytes, TimeSpan idleTimeout, Func<byte[], T> read, CancellationToken cancellationToken) where T : class
    {
        try
        {
            var body = await ProviderHttp.ReadBoundedAsync(response, maxBytes, idleTimeout, cancellationToken);
            return (read(body), null);
        }
        catch (ResponseTooLargeException ex)
        {
            return (null, new ProviderFailure(502, "api_error", "upstream_response_too_large", ex.Message, retryable: false)
            {
                ErrorType = "response_too_large",
            });
        }
        catch (TimeoutException ex)
        {
            return (null, ProviderFailure.Timeout(ex.Message));
        }
        catch (JsonException ex)
        {
            return (null, new ProviderFailure(502, "api_error", "upstream_invalid_response",
                $"The provider's answer is not valid JSON: {ex.Message}", retryable: true) { ErrorType = "invalid_response" });
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException)
        {
            return (null, ProviderFailure.ConnectionFailed($"The provider's answer broke off: {ex.Message}"));
        }
    }

    /// <summary>
    /// Yields the <c>data</c> payload of each server-sent event as it arrives (https://html.spec.whatwg.org/multipage/server-sent-events.html).
    /// Silence longer than <paramref name="idleTimeout"/> between two events throws a <see cref="TimeoutException"/>; time the
    /// caller spends with an event (relaying it to a slow client) is not the provider's silence and is not counted.
    /// Each payload is valid until the next one is read: all of them go through one pooled buffer per stream, so relaying
    /// a chunk allocates nothing for its bytes (a copy per event was an eighth of what a paced stream allocated).
    /// </summary>
    public static async IAsyncEnumerable<ReadOnlyMemory<byte>> ReadSseDataAsync(HttpResponseMessage response, TimeSpan idleTimeout,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var idle = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        idle.CancelAfter(idleTimeout);
        // Not disposed here: the response owns its body, and is let go by Release once the caller knows how the stream ended.
        var body = await response.Content.ReadAsStreamAsync(cancellationToken);
        using var payload = new EventPayload();
        var parser = SseParser.Create(body, payload.Parse);
        await using var events = parser.EnumerateAsync(idle.Token).GetAsyncEnumerator(idle.Token);
        while (true)
        {
            bool more;
            try
            {
                more = await events.MoveNextAsync();
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new TimeoutException($"The provider sent no stream event for {idleTimeout.TotalSeconds:0.###} s.");
            }
            if (!more)
            {
                yield break;
            }
            // The timer measures the provider's silence only: it is off while the caller holds the event (the relay
            // writing to a slow reader waits here; Server:FlushTimeout bounds that) and restarts for the next read.
            idle.CancelAfter(Timeout.InfiniteTimeSpan);
            yield return events.Current.Data;
            idle.CancelAfter(idleTimeout);
        }
    }

    /// <summary>How long a stream that sent its last event may take to end its body before its connection is closed instead.</summary>
    internal static readonly TimeSpan EndOfBodyWait = TimeSpan.FromSeconds(2);

    /// <summary>The most a stream may send after its last event before its connection is closed instead of kept.</summary>
    internal const int MaxAfterLastEvent = 16 * 1024;

    /// <summary>
    /// Lets go of a streamed response. When its last event was read (<paramref name="ended"/>: OpenAI's <c>[DONE]</c>,
    /// Anthropic's <c>message_stop</c>) what remains of the body is only its end (HTTP/1.1's last chunk), which may not
    /// have arrived yet: it is read first, in the background, so the connection goes back to the pool. Disposed unread,
    /// it would be closed (<see cref="ProviderHttp.CreateHandler"/> drains nothing, so that a client who leaves mid-stream
    /// stops the provider at once), and the next call to that provider would pay a new TCP and TLS handshake. Otherwise
    /// (cut short, failed, the client gone) the response is disposed now and its connection closed. The task completes
    /// once the response is disposed, whatever the body does (a slow, long or broken end only closes the connection).
    /// </summary>
    public static Task Release(HttpResponseMessage response, bool ended)
    {
        if (!ended)
        {
            response.Dispose();
            return Task.CompletedTask;
        }
        return ReadEndThenDisposeAsync(response);
    }

    private static async Task ReadEndThenDisposeAsync(HttpResponseMessage response)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(1024);
        try
        {
            using var wait = new CancellationTokenSource();
            // The body stream the events were read from (HttpContent hands out the same one again).
            var body = await response.Content.ReadAsStreamAsync(wait.Token);
            var left = MaxAfterLastEvent;
            var timed = false;
            while (left > 0)
            {
                var reading = body.ReadAsync(buffer.AsMemory(0, Math.Min(buffer.Length, left)), wait.Token);
                // Usually the end is already buffered and the read completes at once: the timer is started only for a
                // stream whose end has yet to arrive, not for every stream.
                if (!timed && !reading.IsCompleted)
                {
                    wait.CancelAfter(EndOfBodyWait);
                    timed = true;
                }
                var read = await reading;
                if (read == 0)
                {
                    break;
                }
                left -= read;
            }
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException or OperationCanceledException or ObjectDisposedException)
        {
            // Too slow, too long or broken: disposing it below closes the connection, as for any stream cut short.
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            response.Dispose();
        }
    }

    /// <summary>
    /// The stream's one buffer for event payloads, rented from the shared pool and grown to the largest event: the parser
    /// hands over each event once it is complete and the caller is done with the previous one (the enumeration is pulled).
    /// </summary>
    private sealed class EventPayload : IDisposable
    {
        private byte[] _buffer = [];

        public ReadOnlyMemory<byte> Parse(string eventType, ReadOnlySpan<byte> data)
        {
            if (data.Length > _buffer.Length)
            {
                Dispose();
                _buffer = ArrayPool<byte>.Shared.Rent(data.Length);
            }
            data.CopyTo(_buffer);
            return _buffer.AsMemory(0, data.Length);
        }

        public void Dispose()
        {
            if (_buffer.Length > 0)
            {
                ArrayPool<byte>.Shared.Return(_buffer);
            }
            _buffer = [];
        }
    }
}
