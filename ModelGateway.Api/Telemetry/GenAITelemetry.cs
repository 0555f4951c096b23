using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Text.Json;
using ModelGateway.Api.ChatCompletions;
using ModelGateway.Api.Providers;
using ModelGateway.Api.Routing;

namespace ModelGateway.Api.Telemetry;

/// <summary>
/// Spans and metrics for upstream model calls, following the OpenTelemetry semantic conventions for generative AI
/// (semconv v1.37.0, "gen-ai-spans" and "gen-ai-metrics": a CLIENT span named <c>chat {gen_ai.request.model}</c> per
/// attempt, <c>gen_ai.provider.name</c> replacing the older <c>gen_ai.system</c>). The gateway's own attributes carry the
/// <c>model_gateway.</c> prefix. Prompt and completion content are recorded only when content capture is turned on
/// (see <see cref="ContentCapture"/>).
/// </summary>
/// <summary>The request's own facts the attempt spans carry: whose request it is and what admission reserved for it.</summary>
internal sealed record RequestTags(string TenantId, long ReservedMicroUsd);

internal static class GenAITelemetry
{
    public const string SourceName = "ModelGateway.Api";

    public static readonly ActivitySource Source = new(SourceName);
    /// <summary>The Api's one meter: GenAI instruments here, the gateway's own in <see cref="GatewayMetrics"/>.</summary>
    internal static readonly Meter Meter = new(SourceName);

    // Bucket boundaries as the conventions advise for these two histograms.
    private static readonly Histogram<long> TokenUsage = Meter.CreateHistogram<long>("gen_ai.client.token.usage", "{token}",
        "Number of input and output tokens used.", advice: new InstrumentAdvice<long>
        {
            HistogramBucketBoundaries = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864],
        });

    private static readonly Histogram<double> OperationDuration = Meter.CreateHistogram<double>("gen_ai.client.operation.duration", "s",
        "GenAI operation duration.", advice: new InstrumentAdvice<double>
        {
            HistogramBucketBoundaries = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92],
        });

    private static readonly Histogram<double> TimeToFirstChunk = Meter.CreateHistogram<double>("model_gateway.time_to_first_chunk", "s",
        "Time from sending a streaming request upstream to its first translated event.");

    private static readonly Counter<long> Attempts = Meter.CreateCounter<long>("model_gateway.upstream.attempts", "{attempt}",
        "Upstream attempts by outcome.");

    /// <summary>The well-known <c>gen_ai.provider.name</c> for a provider type.</summary>
    public static string ProviderName(string providerType) => providerType switch
    {
        ProviderTypes.Anthropic => "anthropic",
        ProviderTypes.LlamaCpp => "llama_cpp",
        _ => "openai",
    };

    public static Activity? StartAttempt(ChatRequest request, RouteTarget target, int attempt, bool fallback, RequestTags? tags,
        bool captureContent)
    {
        var activity = Source.StartActivity(target.SpanName, ActivityKind.Client);
        if (activity is null)
        {
            return null;
        }
        // AddTag, not SetTag: the span is new, so no tag is there to replace, and SetTag would search the list for each.
        activity.AddTag("gen_ai.operation.name", "chat");
        activity.AddTag("gen_ai.provider.name", ProviderName(target.Provider.Type));
        activity.AddTag("gen_ai.request.model", target.Model);
        if (request.MaxTokens is { } max)
        {
            activity.AddTag("gen_ai.request.max_tokens", max);
        }
        if (request.Temperature is { } t)
        {
            activity.AddTag("gen_ai.request.temperature", t);
        }
        if (request.TopP is { } p)
        {
            activity.AddTag("gen_ai.request.top_p", p);
        }
        activity.AddTag("server.address", target.Provider.BaseUrl.Host);
        activity.AddTag("server.port", target.Provider.BaseUrl.Port);
        activity.AddTag("model_gateway.route.alias", target.Alias);
        activity.AddTag("model_gateway.provider", target.Provider.Name);
        activity.AddTag("model_gateway.attempt", attempt);
        activity.AddTag("model_gateway.fallback", fallback);
        activity.AddTag("model_gateway.stream", request.Stream);
        if (tags is not null)
        {
            activity.AddTag("model_gateway.tenant.id", tags.TenantId);
            activity.AddTag("model_gateway.reservation_usd", tags.ReservedMicroUsd / 1_000_000.0);
        }
        if (captureContent && activity.IsAllDataRequested)
        {
            ContentCapture.RememberInput(activity, request.Messages);
        }
        return activity;
    }

    public static void Failed(Activity? activity, RouteTarget target, ProviderFailure failure, long started)
    {
        var errorType = string.IsNullOrEmpty(failure.ErrorType) ? failure.StatusCode.ToString(System.Globalization.CultureInfo.InvariantCulture) : failure.ErrorType;
        Record(target, started, errorType, usage: null);
        if (activity is null)
        {
            return;
        }
        activity.SetTag("error.type", errorType);
        activity.SetStatus(ActivityStatusCode.Error, failure.Message);
        ContentCapture.Emit(activity, outputMessages: null);
        activity.Stop();
    }

    public static void Completed(Activity? activity, RouteTarget target, ProviderCompletion completion, long started)
    {
        Record(target, started, null, completion.Usage);
        if (activity is null)
        {
            return;
        }
        if (completion.Id is { } id)
        {
            activity.SetTag("gen_ai.response.id", id);
        }
        if (completion.Model is { } model)
        {
            activity.SetTag("gen_ai.response.model", model);
        }
        if (completion.FinishReason is { } finish)
        {
            activity.SetTag("gen_ai.response.finish_reasons", new[] { finish });
        }
        SetUsage(activity, target, completion.Usage);
        // The output is read (and a relayed answer parsed) only when content capture is on for this span.
        if (ContentCapture.IsCapturing(activity))
        {
            ContentCapture.Emit(activity, ContentCapture.Output(completion.Completion));
        }
        activity.Stop();
    }

    public static void Cancelled(Activity? activity, RouteTarget target, long started)
    {
        Record(target, started, "cancelled", null);
        if (activity is not null)
        {
            activity.SetTag("error.type", "cancelled");
            activity.Stop();
        }
    }

    /// <summary>Wraps a started stream so its span ends, with usage and finish reason, when the relay is done with it.</summary>
    public static IAsyncEnumerator<StreamEvent> ObserveStream(IAsyncEnumerator<StreamEvent> events, bool hasFirst, Activity? activity,
        RouteTarget target, long started) => new ObservedStream(events, hasFirst, activity, target, started);

    /// <summary><c>gen_ai.response.id</c> and <c>gen_ai.response.model</c> from a chunk's top-level <c>id</c> and <c>model</c>.</summary>
    private static void SetResponseIdentity(Activity activity, ReadOnlySpan<byte> chunk)
    {
        var reader = new Utf8JsonReader(chunk);
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return;
            }
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var name = reader.ValueSpan;
                reader.Read();
                if (reader.TokenType == JsonTokenType.String && name.SequenceEqual("id"u8))
                {
                    activity.SetTag("gen_ai.response.id", reader.GetString());
                }
                else if (reader.TokenType == JsonTokenType.String && name.SequenceEqual("model"u8))
                {
                    activity.SetTag("gen_ai.response.model", reader.GetString());
                }
                else
                {
                    reader.Skip();
                }
            }
        }
        catch (JsonException)
        {
            // A malformed chunk is the relay's to report; the span just goes without the response's identity.
        }
    }

    private static void SetUsage(Activity activity, RouteTarget target, TokenUsage usage)
    {
        activity.SetTag("gen_ai.usage.input_tokens", usage.InputTokens);
        activity.SetTag("gen_ai.usage.output_tokens", usage.OutputTokens);
        var cost = target.Prices.CostMicroUsd(usage.InputTokens, usage.OutputTokens, usage.CachedInputTokens);
        activity.SetTag("model_gateway.cost_usd", cost / 1_000_000.0);
        if (usage.Estimated)
        {
            activity.SetTag("model_gateway.usage.estimated", true);
        }
    }

    private static void Record(RouteTarget target, long started, string? errorType, TokenUsage? usage)
    {
        var provider = ProviderName(target.Provider.Type);
        var tags = new TagList
        {
            { "gen_ai.operation.name", "chat" },
            { "gen_ai.provider.name", provider },
            { "gen_ai.request.model", target.Model },
            { "server.address", target.Provider.BaseUrl.Host },
        };
        if (errorType is not null)
        {
            tags.Add("error.type", errorType);
        }
        OperationDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, tags);
        Attempts.Add(1, new TagList { { "gen_ai.provider.name", provider }, { "model_gateway.outcome", errorType ?? "ok" } });
        if (usage is { } u && (u.InputTokens > 0 || u.OutputTokens > 0))
        {
            var input = tags;
            input.Add("gen_ai.token.type", "input");
            TokenUsage.Record(u.InputTokens, input);
            var output = tags;
            output.Add("gen_ai.token.type", "output");
            TokenUsage.Record(u.OutputTokens, output);
        }
    }

    private sealed class ObservedStream : IAsyncEnumerator<StreamEvent>
    {
        private readonly IAsyncEnumerator<StreamEvent> _inner;
        private readonly Activity? _activity;
        private readonly RouteTarget _target;
        private readonly long _started;
        private TokenUsage? _usage;
        private string? _finish;
        private string? _error;
        private bool _completed;
        private readonly System.Text.StringBuilder? _content;
        private bool _identified;

        public ObservedStream(IAsyncEnumerator<StreamEvent> inner, bool hasFirst, Activity? activity, RouteTarget target, long started)
        {
            _inner = inner;
            _activity = activity;
            _target = target;
            _started = started;
            // Only when content capture remembered the input on this span: otherwise deltas are not kept at all.
            _content = ContentCapture.IsCapturing(activity) ? new System.Text.StringBuilder() : null;
            TimeToFirstChunk.Record(Stopwatch.GetElapsedTime(started).TotalSeconds,
                new TagList { { "gen_ai.provider.name", ProviderName(target.Provider.Type) }, { "gen_ai.request.model", target.Model } });
            if (hasFirst)
            {
                Observe(inner.Current);
            }
            else
            {
                _completed = true;
            }
        }

        public StreamEvent Current => _inner.Current;

        // Called once per stream event and awaited once: its state machine is pooled rather than allocated per event.
        [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder<>))]
        public async ValueTask<bool> MoveNextAsync()
        {
            try
            {
                var more = await _inner.MoveNextAsync();
                if (more)
                {
                    Observe(_inner.Current);
                }
                else
                {
                    _completed = true;
                }
                return more;
            }
            catch (OperationCanceledException)
            {
                _error = "cancelled";
                throw;
            }
            catch (Exception ex)
            {
                _error = ex is TimeoutException ? "timeout" : ex.GetType().Name;
                throw;
            }
        }

        private void Observe(in StreamEvent e)
        {
            if (!_identified && e.Kind == StreamEventKind.Chunk && _activity is { IsAllDataRequested: true })
            {
                // The first chunk names the response (every chunk repeats it): read once, not per chunk.
                _identified = true;
                SetResponseIdentity(_activity, e.Json.Span);
            }
            if (e.Usage is { } usage)
            {
                _usage = usage;
            }
            if (e.FinishReason is { } finish)
            {
                _finish = finish;
            }
            if (_content is not null && e.ContentDelta is { } delta)
            {
                _content.Append(delta);
            }
            if (e.Kind == StreamEventKind.Error)
            {
                _error = "stream_error";
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _inner.DisposeAsync();
            // A relay that stops reading before the end (the client left) leaves the stream incomplete.
            var errorType = _error ?? (_completed ? null : "incomplete");
            Record(_target, _started, errorType, _usage);
            if (_activity is null)
            {
                return;
            }
            if (_finish is not null)
            {
                _activity.SetTag("gen_ai.response.finish_reasons", new[] { _finish });
            }
            if (_usage is { } u)
            {
                SetUsage(_activity, _target, u);
            }
            if (errorType is not null)
            {
                _activity.SetTag("error.type", errorType);
                _activity.SetStatus(ActivityStatusCode.Error);
            }
            if (_content is not null)
            {
                ContentCapture.Emit(_activity, ContentCapture.Output(_content.ToString(), _finish));
            }
            _activity.Stop();
        }
    }
}
