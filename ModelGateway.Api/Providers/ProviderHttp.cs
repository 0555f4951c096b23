using System.Buffers;
using System.Net;
using System.Net.Http.Headers;

namespace ModelGateway.Api.Providers;

/// <summary>HTTP plumbing shared by every adapter: sending with a first-byte timeout, reading bounded bodies, retry-after.</summary>
internal static class ProviderHttp
{
    /// <summary>
    /// The handler under the providers' client (HTTP/2 where the provider offers it: see <see cref="SendAsync"/>). On
    /// HTTP/1.1 a client that leaves mid-stream must close the upstream connection now, not drain the rest of the answer
    /// (which the provider would go on generating and billing): so no response is drained on disposal
    /// (<see cref="SocketsHttpHandler.MaxResponseDrainSize"/> 0), and a stream read to its last event reads the end of its
    /// body itself before it lets go (<see cref="UpstreamBody.Release"/>).
    /// </summary>
    public static SocketsHttpHandler CreateHandler() => new()
    {
        AllowAutoRedirect = false,
        UseCookies = false,
        UseProxy = false,
        AutomaticDecompression = DecompressionMethods.None,
        ConnectTimeout = TimeSpan.FromSeconds(10),
        PooledConnectionIdleTimeout = TimeSpan.FromMinutes(1),
        EnableMultipleHttp2Connections = true,
        MaxResponseDrainSize = 0,
    };

    /// <summary>
    /// Sends <paramref name="message"/> (as HTTP/2 where the provider offers it) and waits for the response headers at most
    /// <paramref name="firstByteTimeout"/>.
    /// Connection failures and timeouts come back as a <see cref="ProviderFailure"/>, and so does a non-2xx answer, read
    /// (and disposed) by the protocol's <paramref name="readFailure"/>; the client's cancellation is thrown. A response
    /// returned is a success whose body is the caller's to read and dispose.
    /// </summary>
    public static async Task<(HttpResponseMessage? Response, ProviderFailure? Failure)> SendAsync(HttpMessageInvoker http,
        HttpRequestMessage message, TimeSpan firstByteTimeout, Func<HttpResponseMessage, CancellationToken, Task<ProviderFailure>> readFailure,
        CancellationToken cancellationToken)
    {
        var (response, failure) = await SendForHeadersAsync(http, message, firstByteTimeout, cancellationToken);
        if (failure is not null)
        {
            return (null, failure);
        }
        if (!IsSuccess(response!.StatusCode))
        {
            using (response)
            {
                return (null, await readFailure(response, cancellationToken));
            }
        }
        return (response, null);
    }

    private static async Task<(HttpResponseMessage? Response, ProviderFailure? Failure)> SendForHeadersAsync(HttpMessageInvoker http,
        HttpRequestMessage message, TimeSpan firstByteTimeout, CancellationToken cancellationToken)
    {
        // HTTP/2 where the provider offers it (TLS with ALPN: OpenAI, Anthropic, OpenRouter), HTTP/1.1 otherwise (plain http,
        // as a local llama.cpp server): concurrent streams share a connection instead of one TCP and TLS handshake each, and
        // a client who leaves resets its own stream (RST_STREAM) instead of closing a connection. YARP's default too.
        message.Version = HttpVersion.Version20;
        message.VersionPolicy = HttpVersionPolicy.RequestVersionOrLower;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(firstByteTimeout);
        try
        {
            // An invoker returns at the headers, the body unread (HttpClient's ResponseHeadersRead).
            var response = await http.SendAsync(message, timeout.Token);
            return (response, null);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return (null, ProviderFailure.Timeout(
                $"The provider did not answer within {firstByteTimeout.TotalSeconds:0.###} s."));
        }
        catch (HttpRequestException ex)
        {
            return (null, ProviderFailure.ConnectionFailed($"Could not reach the provider: {ex.Message}"));
        }
    }

    /// <summary>Reads a whole body, refusing more than <paramref name="maxBytes"/> (a provider must not exhaust our memory).</summary>
    public static async Task<byte[]> ReadBoundedAsync(HttpResponseMessage response, int maxBytes, TimeSpan idleTimeout,
        CancellationToken cancellationToken)
    {
        var declared = response.Content.Headers.ContentLength;
        if (declared > maxBytes)
        {
            throw new ResponseTooLargeException(maxBytes);
        }
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(idleTimeout);
        try
        {
            await using var stream = await response.Content.ReadAsStreamAsync(timeout.Token);
            // A declared length (the usual case) is read straight into an array of that size: one allocation, the body's own.
            if (declared is { } contentLength)
            {
                var body = new byte[(int)contentLength];
                var filled = 0;
                while (filled < body.Length)
                {
                    var n = await stream.ReadAsync(body.AsMemory(filled), timeout.Token);
                    if (n == 0)
                    {
                        throw new IOException($"The provider's answer ended after {filled} of its {contentLength} bytes.");
                    }
                    filled += n;
                    timeout.CancelAfter(idleTimeout);
                }
                return body;
            }
            // A chunked body grows in a pooled buffer and is copied out once.
            var buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
            var size = 0;
            try
            {
                int read;
                while ((read = await stream.ReadAsync(buffer.AsMemory(size), timeout.Token)) > 0)
                {
                    size += read;
                    if (size > maxBytes)
                    {
                        throw new ResponseTooLargeException(maxBytes);
                    }
                    if (size == buffer.Length)
                    {
                        var larger = ArrayPool<byte>.Shared.Rent(buffer.Length * 2);
                        buffer.AsSpan(0, size).CopyTo(larger);
                        ArrayPool<byte>.Shared.Return(buffer);
                        buffer = larger;
                    }
                    timeout.CancelAfter(idleTimeout);
                }
                return buffer.AsSpan(0, size).ToArray();
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"The provider sent nothing for {idleTimeout.TotalSeconds:0.###} s.");
        }
    }

    public static TimeSpan? RetryAfter(HttpResponseMessage response)
    {
        var header = response.Headers.RetryAfter;
        if (header?.Delta is { } delta)
        {
            return delta;
        }
        if (header?.Date is { } date)
        {
            var d = date - DateTimeOffset.UtcNow;
            return d > TimeSpan.Zero ? d : TimeSpan.Zero;
        }
        // OpenAI also sends retry-after-ms.
        if (response.Headers.TryGetValues("retry-after-ms", out var ms) && double.TryParse(ms.FirstOrDefault(),
                System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var msValue))
        {
            return TimeSpan.FromMilliseconds(msValue);
        }
        return null;
    }

    public static void AddHeaders(HttpRequestMessage message, IReadOnlyDictionary<string, string> headers)
    {
        foreach (var (name, value) in headers)
        {
            message.Headers.TryAddWithoutValidation(name, value);
        }
    }

    public static ByteArrayContent JsonContent(byte[] body)
    {
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        return content;
    }

    /// <summary>
    /// A provider's endpoint URI (base URL + path), combined once and reused: <see cref="Uri"/> is immutable, and combining
    /// it anew cost every request several strings. One entry per configured provider and adapter path.
    /// </summary>
    public static Uri Endpoint(Uri baseUrl, string path) =>
        Endpoints.GetOrAdd((baseUrl, path), static k => new Uri(k.BaseUrl, k.Path));

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<(Uri BaseUrl, string Path), Uri> Endpoints = new();

    public static bool IsSuccess(HttpStatusCode status) => (int)status is >= 200 and < 300;
}

/// <summary>The provider's response exceeded <c>Gateway:MaxResponseBytes</c>.</summary>
internal sealed class ResponseTooLargeException(int maxBytes)
    : IOException($"The provider's response is larger than the {maxBytes} bytes the gateway accepts.");
