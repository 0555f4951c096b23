using System.Net;
using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;

namespace ModelGateway.Realtime.Chat;

/// <summary>
/// <see cref="IApiClient"/> over HTTP. The HttpClient has no resilience handler (a chat stream must not
/// be retried or cut after 10 s); W3C trace context is added by HttpClient's own diagnostics.
/// </summary>
internal sealed class HttpApiClient(HttpClient http) : IApiClient
{
    private static readonly TimeSpan KeyCheckTimeout = TimeSpan.FromSeconds(10);
    private const int MaxErrorBodyBytes = 64 * 1024;

    public async Task<KeyCheck> ValidateKeyAsync(string apiKey, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(KeyCheckTimeout);
        using var request = new HttpRequestMessage(HttpMethod.Get, "v1/models");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        try
        {
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token).ConfigureAwait(false);
            return response.StatusCode switch
            {
                HttpStatusCode.OK => KeyCheck.Valid,
                HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden => KeyCheck.Invalid,
                _ => KeyCheck.Unavailable,
            };
        }
        catch (Exception e) when (e is HttpRequestException || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            return KeyCheck.Unavailable;
        }
    }

    public async IAsyncEnumerable<ApiChatEvent> StreamChatAsync(string apiKey, ReadOnlyMemory<byte> requestBody, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        request.Content = new ReadOnlyMemoryContent(requestBody);
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");

        HttpResponseMessage response;
        ApiChatEvent? failure = null;
        try
        {
            response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException e)
        {
            response = null!;
            failure = new ApiChatEvent.Error(502, ErrorEnvelope.Create("The gateway API could not be reached: " + e.Message, "api_error", "upstream_unavailable"));
        }
        if (failure is not null)
        {
            yield return failure;
            yield break;
        }

        using (response)
        {
            if (!response.IsSuccessStatusCode)
            {
                yield return new ApiChatEvent.Error((int)response.StatusCode, await ReadErrorAsync(response, cancellationToken).ConfigureAwait(false));
                yield break;
            }
            if (response.Content.Headers.ContentType?.MediaType != "text/event-stream")
            {
                yield return new ApiChatEvent.Completion(await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false));
                yield break;
            }

            // Server-sent events (HTML Living Standard §9.2.6): "data:" lines accumulate until a blank line
            // ends the event; OpenAI ends the stream with "data: [DONE]".
            await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
            using var reader = new StreamReader(stream, Encoding.UTF8);
            var data = new StringBuilder();
            while (await reader.ReadLineAsync(cancellationToken).ConfigureAwait(false) is { } line)
            {
                if (line.Length == 0)
                {
                    if (data.Length == 0)
                    {
                        continue;
                    }
                    var payload = data.ToString();
                    data.Clear();
                    if (payload == "[DONE]")
                    {
                        yield break;
                    }
                    yield return new ApiChatEvent.Chunk(payload);
                    continue;
                }
                if (line.StartsWith("data:", StringComparison.Ordinal))
                {
                    if (data.Length > 0)
                    {
                        data.Append('\n');
                    }
                    data.Append(line.AsSpan(line.Length > 5 && line[5] == ' ' ? 6 : 5));
                }
            }
            if (data.Length > 0 && data.ToString() != "[DONE]")
            {
                yield return new ApiChatEvent.Chunk(data.ToString());
            }
        }
    }

    private static async Task<string> ReadErrorAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var bytes = await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
        if (bytes.Length is > 0 and <= MaxErrorBodyBytes)
        {
            try
            {
                using var doc = JsonDocument.Parse(bytes);
                if (doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("error", out _))
                {
                    return Encoding.UTF8.GetString(bytes);
                }
            }
            catch (JsonException)
            {
            }
        }
        return ErrorEnvelope.Create($"The gateway API answered {(int)response.StatusCode}.", "api_error", null);
    }
}
