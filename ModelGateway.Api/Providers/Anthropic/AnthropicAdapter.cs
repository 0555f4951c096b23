using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using ModelGateway.Api.Configuration;

namespace ModelGateway.Api.Providers.Anthropic;

/// <summary>
/// Anthropic's Messages API (https://docs.anthropic.com/en/api/messages), version <c>2023-06-01</c>, behind the OpenAI chat
/// completions surface: the request is rewritten by <see cref="AnthropicRequestWriter"/>, answers by
/// <see cref="AnthropicResponse"/>, stream events by <see cref="AnthropicStreamTranslator"/>. Unlike the original gateway, system
/// messages reach the model and streams reach the client as OpenAI chunks, never as Anthropic's own events.
/// </summary>
internal sealed class AnthropicAdapter(IOptions<GatewayOptions> options, TimeProvider time) : IProviderAdapter
{
    /// <summary>The API version the translation follows (versioning guide): sent on every request.</summary>
    public const string ApiVersion = "2023-06-01";

    private readonly int _maxResponseBytes = options.Value.MaxResponseBytes;

    public string ProviderType => ProviderTypes.Anthropic;

    public async Task<ProviderResponse> SendAsync(ProviderCall call, CancellationToken cancellationToken)
    {
        var target = call.Target;
        var structured = AnthropicStructuredOutput.For(call.Request);
        byte[] body;
        try
        {
            body = AnthropicRequestWriter.Write(call.Request, target, structured);
        }
        catch (UnsupportedRequestException ex)
        {
            return new ProviderFailure(400, "invalid_request_error", "unsupported_by_provider", ex.Message, retryable: false)
            {
                ErrorType = "unsupported_request",
            };
        }

        using var message = new HttpRequestMessage(HttpMethod.Post, ProviderHttp.Endpoint(target.Provider.BaseUrl, "v1/messages"))
        {
            Content = ProviderHttp.JsonContent(body),
        };
        // Authentication and versioning (API overview, "Headers"): x-api-key, not a bearer token.
        if (target.Provider.ApiKey is { } key)
        {
            message.Headers.TryAddWithoutValidation("x-api-key", key);
        }
        ProviderHttp.AddHeaders(message, target.Provider.Headers);
        if (!message.Headers.Contains("anthropic-version"))
        {
            message.Headers.TryAddWithoutValidation("anthropic-version", ApiVersion);
        }
        if (call.Request.Stream)
        {
            message.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        }

        var (response, failure) = await ProviderHttp.SendAsync(call.Http, message, target.Provider.FirstByteTimeout, ReadFailureAsync, cancellationToken);
        if (response is null)
        {
            return failure!;
        }

        var created = time.GetUtcNow().ToUnixTimeSeconds();
        if (call.Request.Stream)
        {
            return new AnthropicStream(response, new AnthropicStreamTranslator(created, structured), target.Provider.IdleTimeout);
        }
        using (response)
        {
            var (completion, bodyFailure) = await UpstreamBody.ReadJsonAsync(response, _maxResponseBytes, target.Provider.IdleTimeout,
                body => AnthropicResponse.Translate(body, created, structured), cancellationToken);
            return (ProviderResponse?)bodyFailure ?? completion!;
        }
    }

    /// <summary>
    /// An error response (errors guide: HTTP status + <c>{"type":"error","error":{"type","message"}}</c>). The status decides
    /// retryability: 429, 500 and 529 <c>overloaded_error</c> may go to another target, the rest may not.
    /// </summary>
    private static async Task<ProviderFailure> ReadFailureAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var status = (int)response.StatusCode;
        string? type = null;
        string? text = null;
        try
        {
            var body = await ProviderHttp.ReadBoundedAsync(response, 64 * 1024, TimeSpan.FromSeconds(5), cancellationToken);
            (type, text) = AnthropicResponse.ReadError(JsonNode.Parse(body));
        }
        catch (Exception ex) when (ex is JsonException or IOException or HttpRequestException or TimeoutException)
        {
            // The status is what matters; an unreadable error body changes nothing.
        }
        var message = text is null ? $"The provider answered HTTP {status}." : $"Provider error ({type}): {text}";
        return ProviderFailure.FromStatus(status, message, type is null ? null : AnthropicResponse.OpenAIErrorType(type),
            ProviderHttp.RetryAfter(response));
    }

    private sealed class AnthropicStream(HttpResponseMessage response, AnthropicStreamTranslator translator, TimeSpan idleTimeout)
        : ProviderStream
    {
        /// <summary>Whether <c>message_stop</c> was read: the body holds nothing more than its end.</summary>
        private bool _ended;

        public override async IAsyncEnumerable<StreamEvent> ReadEventsAsync([EnumeratorCancellation] CancellationToken cancellationToken)
        {
            await foreach (var data in UpstreamBody.ReadSseDataAsync(response, idleTimeout, cancellationToken))
            {
                if (data.Length == 0 || !translator.TryTranslate(data, out var e))
                {
                    continue;
                }
                _ended = translator.Completed && e.Kind != StreamEventKind.Error;
                yield return e;
                if (e.Kind == StreamEventKind.Error || translator.Completed)
                {
                    yield break;
                }
            }
            // A clean end of body before message_stop is still a cut: the client must not get [DONE] for half an answer.
            throw new IOException("The Anthropic stream ended before message_stop.");
        }

        public override void Dispose() => Released = UpstreamBody.Release(response, _ended);
    }
}
