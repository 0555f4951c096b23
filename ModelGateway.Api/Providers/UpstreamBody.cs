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
        await using var body = await response.Content.ReadAsStreamAsync(cancellationToken);
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
