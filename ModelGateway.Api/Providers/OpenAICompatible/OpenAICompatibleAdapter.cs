using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using ModelGateway.Api.ChatCompletions;
using ModelGateway.Api.Configuration;

namespace ModelGateway.Api.Providers.OpenAICompatible;

/// <summary>
/// OpenAI chat completions and every server that speaks them (OpenRouter, OpenAI, vLLM, ...): the request is forwarded
/// verbatim except <c>model</c> (the upstream model), the output cap (the tenant's clamp) and
/// <c>stream_options.include_usage</c> (always requested so usage is known; the usage chunk reaches the client only if it
/// asked). Gateway-only extension fields are not forwarded. Subclasses adjust for servers with quirks (llama.cpp).
/// See https://platform.openai.com/docs/api-reference/chat/create.
/// </summary>
internal class OpenAICompatibleAdapter(IOptions<GatewayOptions> options) : IProviderAdapter
{
    /// <summary>Fields of the gateway's own (the original's extensions and ours) that no provider should see.</summary>
    protected static readonly HashSet<string> GatewayOnlyFields = new(StringComparer.Ordinal) { "response_schema", "coerce", "tenant", "repair" };

    private readonly int _maxResponseBytes = options.Value.MaxResponseBytes;

    public virtual string ProviderType => ProviderTypes.OpenAICompatible;

    public async Task<ProviderResponse> SendAsync(ProviderCall call, CancellationToken cancellationToken)
    {
        var target = call.Target;
        using var message = new HttpRequestMessage(HttpMethod.Post, ProviderHttp.Endpoint(target.Provider.BaseUrl, ChatCompletionsPath))
        {
            Content = ProviderHttp.JsonContent(BuildRequestBody(call.Request, target.Model)),
        };
        if (target.Provider.ApiKey is { } key)
        {
            message.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }
        if (call.Request.Stream)
        {
            message.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        }
        ProviderHttp.AddHeaders(message, target.Provider.Headers);

        var (response, failure) = await ProviderHttp.SendAsync(call.Http, message, target.Provider.FirstByteTimeout, ReadFailureAsync, cancellationToken);
        if (response is null)
        {
            return failure!;
        }

        if (call.Request.Stream)
        {
            return new OpenAIStream(response, this, CreateStreamState(call), target.Provider.IdleTimeout);
        }

        using (response)
        {
            var (completion, bodyFailure) = await UpstreamBody.ReadJsonAsync(response, _maxResponseBytes,
                target.Provider.IdleTimeout, body => ReadCompletion(body, call), cancellationToken);
            return bodyFailure is not null ? bodyFailure : completion!;
        }
    }

    /// <summary>The chat completions endpoint relative to the provider's base URL (OpenAI's base URL ends in <c>/v1</c>).</summary>
    protected virtual string ChatCompletionsPath => "chat/completions";

    /// <summary>
    /// The name the output cap is sent under; null keeps the client's (<c>max_tokens</c> or <c>max_completion_tokens</c>),
    /// for servers that know only one of them.
    /// </summary>
    protected virtual string? MaxTokensField => null;

    /// <summary>The upstream body: the client's fields in their order, with the overrides described on the class.</summary>
    protected virtual byte[] BuildRequestBody(ChatRequest request, string upstreamModel)
    {
        using var body = PooledJsonWriter.Rent(relaxedEscaping: false);
        var writer = body.Writer;
        writer.WriteStartObject();
        var wroteCap = false;
        foreach (var (name, value) in request.Body)
        {
            switch (name)
            {
                case "model":
                    writer.WriteString("model", upstreamModel);
                    continue;
                case "stream_options":
                    continue;
                case "max_tokens" or "max_completion_tokens":
                    if (request.MaxTokens is { } cap && !(wroteCap && MaxTokensField is not null))
                    {
                        writer.WriteNumber(MaxTokensField ?? name, cap);
                        wroteCap = true;
                    }
                    continue;
            }
            if (GatewayOnlyFields.Contains(name))
            {
                continue;
            }
            writer.WritePropertyName(name);
            if (value is null)
            {
                writer.WriteNullValue();
            }
            else
            {
                value.WriteTo(writer);
            }
        }
        if (StructuredOutput.ResponseSchema.Read(request) is { Source: StructuredOutput.ResponseSchemaSource.Extension } extension)
        {
            WriteResponseFormat(writer, extension);
        }
        if (!wroteCap && request.MaxTokens is { } clamp)
        {
            writer.WriteNumber(MaxTokensField ?? "max_tokens", clamp);
        }
        if (request.Stream)
        {
            writer.WriteStartObject("stream_options");
            if (request.Body["stream_options"] is JsonObject clientOptions)
            {
                foreach (var (name, value) in clientOptions)
                {
                    if (name != "include_usage")
                    {
                        writer.WritePropertyName(name);
                        if (value is null)
                        {
                            writer.WriteNullValue();
                        }
                        else
                        {
                            value.WriteTo(writer);
                        }
                    }
                }
            }
            writer.WriteBoolean("include_usage", true);
            writer.WriteEndObject();
        }
        WriteExtraFields(writer, request);
        writer.WriteEndObject();
        return body.ToArray();
    }

    /// <summary>
    /// The original gateway's <c>response_schema</c> as OpenAI's <c>response_format</c> json_schema, so the upstream constrains
    /// the output (structured outputs guide). <c>strict</c> stays off: strict mode refuses schemas that leave properties
    /// optional or allow additional ones, which the extension never required; the gateway validates the output anyway.
    /// llama.cpp reads the same shape (tools/server/README.md, "response_format"; llamacpp_request_response_format_json_schema.json).
    /// </summary>
    private static void WriteResponseFormat(Utf8JsonWriter writer, StructuredOutput.ResponseSchema schema)
    {
        writer.WriteStartObject("response_format");
        writer.WriteString("type", "json_schema");
        writer.WriteStartObject("json_schema");
        writer.WriteString("name", schema.Name);
        writer.WritePropertyName("schema");
        schema.Schema!.WriteTo(writer);
        writer.WriteBoolean("strict", false);
        writer.WriteEndObject();
        writer.WriteEndObject();
    }

    /// <summary>A hook for subclasses to add provider-specific fields.</summary>
    protected virtual void WriteExtraFields(Utf8JsonWriter writer, ChatRequest request)
    {
    }

    /// <summary>
    /// A non-streaming answer from its bytes (a <see cref="JsonException"/> when they are not a JSON object). An OpenAI server's
    /// answer needs no change: it is scanned for usage and relayed as it came. Subclasses fix up servers with quirks
    /// (llama.cpp reports no model of its own and may omit usage).
    /// </summary>
    protected virtual ProviderCompletion ReadCompletion(byte[] body, ProviderCall call) => new(body, CompletionScan.Read(body));

    /// <summary>Normalises an OpenAI usage object (https://platform.openai.com/docs/api-reference/chat/object#chat/object-usage).</summary>
    protected static TokenUsage ReadUsage(JsonObject? usage)
    {
        if (usage is null)
        {
            return default;
        }
        var cached = usage["prompt_tokens_details"]?["cached_tokens"] is JsonValue c && c.TryGetValue<int>(out var cv) ? cv : 0;
        return new TokenUsage(GetInt(usage, "prompt_tokens"), GetInt(usage, "completion_tokens"), cached);
    }

    protected static int GetInt(JsonObject o, string name) =>
        o[name] is JsonValue v && v.TryGetValue<int>(out var i) ? i : 0;

    /// <summary>Maps the provider's error response (OpenAI envelope) to a failure.</summary>
    protected virtual async Task<ProviderFailure> ReadFailureAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var status = (int)response.StatusCode;
        string message = $"The provider answered HTTP {status}.";
        string? type = null;
        try
        {
            var body = await ProviderHttp.ReadBoundedAsync(response, 64 * 1024, TimeSpan.FromSeconds(5), cancellationToken);
            if (JsonNode.Parse(body) is JsonObject o && o["error"] is JsonObject e)
            {
                message = e["message"]?.GetValueKind() == JsonValueKind.String ? $"Provider error: {e["message"]!.GetValue<string>()}" : message;
                type = e["type"]?.GetValueKind() == JsonValueKind.String ? e["type"]!.GetValue<string>() : null;
            }
        }
        catch (Exception ex) when (ex is JsonException or IOException or HttpRequestException or TimeoutException)
        {
            // The status is what matters; an unreadable error body changes nothing.
        }
        return ProviderFailure.FromStatus(status, message, status is 400 or 404 or 422 ? "invalid_request_error" : type is null ? null : MapType(status, type),
            ProviderHttp.RetryAfter(response));
    }

    /// <summary>
    /// The upstream's error type as the client sees it. 401/403 mean the gateway's own credentials failed, which
    /// <see cref="ProviderFailure.FromStatus"/> reports as a 502: its type must not claim the client's key was wrong.
    /// </summary>
    private static string MapType(int status, string type) => status switch
    {
        429 => "rate_limit_error",
        401 or 403 or >= 500 => "api_error",
        _ => type,
    };

    /// <summary>
    /// Turns one upstream SSE data payload into a stream event. Returns false for payloads to drop.
    /// OpenAI sends the usage on a last chunk whose <c>choices</c> is empty.
    /// </summary>
    protected virtual bool TryTranslateChunk(ReadOnlyMemory<byte> data, StreamState state, out StreamEvent streamEvent) =>
        Classify(data, state, out streamEvent);

    protected static JsonObject ParseChunk(ReadOnlySpan<byte> data) =>
        JsonNode.Parse(data) as JsonObject ?? throw new JsonException("A stream event is not a JSON object.");

    /// <summary>
    /// Classifies the OpenAI chunk <paramref name="bytes"/> (<see cref="ChunkScan"/>: one reader pass, no DOM) and notes its
    /// usage in <paramref name="state"/>. A usage-only chunk without usage is dropped.
    /// </summary>
    protected static bool Classify(ReadOnlyMemory<byte> bytes, StreamState state, out StreamEvent streamEvent)
    {
        streamEvent = ChunkScan.Read(bytes);
        if (streamEvent.Kind == StreamEventKind.Error)
        {
            return true;
        }
        state.SawUsage |= streamEvent.Usage is not null;
        return streamEvent.Kind == StreamEventKind.Chunk || streamEvent.Usage is not null;
    }

    /// <summary>
    /// Called when the upstream stream has ended ([DONE] or end of body): a subclass may add a last event, e.g. the usage
    /// a server did not report.
    /// </summary>
    protected virtual bool TryEndStream(StreamState state, out StreamEvent streamEvent)
    {
        streamEvent = default;
        return false;
    }

    /// <summary>What an adapter remembers across the chunks of one stream.</summary>
    protected class StreamState(ProviderCall call)
    {
        public ProviderCall Call { get; } = call;

        /// <summary>Whether any chunk carried usage.</summary>
        public bool SawUsage { get; set; }
    }

    /// <summary>Per-stream state; subclasses that remember more return their own subclass.</summary>
    protected virtual StreamState CreateStreamState(ProviderCall call) => new(call);

    private sealed class OpenAIStream(HttpResponseMessage response, OpenAICompatibleAdapter adapter, StreamState state,
        TimeSpan idleTimeout) : ProviderStream
    {
        /// <summary>Whether <c>[DONE]</c> was read: the body holds nothing more than its end.</summary>
        private bool _ended;

        public override async IAsyncEnumerable<StreamEvent> ReadEventsAsync([EnumeratorCancellation] CancellationToken cancellationToken)
        {
            await foreach (var data in UpstreamBody.ReadSseDataAsync(response, idleTimeout, cancellationToken))
            {
                if (data.Span.SequenceEqual("[DONE]"u8))
                {
                    _ended = true;
                    break;
                }
                if (data.Length == 0)
                {
                    continue;
                }
                if (adapter.TryTranslateChunk(data, state, out var e))
                {
                    yield return e;
                }
            }
            if (adapter.TryEndStream(state, out var last))
            {
                yield return last;
            }
        }

        public override void Dispose() => Released = UpstreamBody.Release(response, _ended);
    }
}
