using System.Diagnostics;
using Microsoft.Extensions.Options;
using ModelGateway.Api.ChatCompletions;
using ModelGateway.Api.Configuration;
using ModelGateway.Api.Providers;
using ModelGateway.Api.Telemetry;

namespace ModelGateway.Api.Routing;

/// <summary>One upstream attempt, as traces record it.</summary>
internal readonly record struct AttemptRecord(int Number, string Provider, string Model, int? Status, double LatencyMs, string? ErrorType);

/// <summary>The outcome of routing: a response from some target, or the last failure when every attempt failed.</summary>
internal sealed class RoutedResponse
{
    public required AttemptLog Attempts { get; init; }

    public RouteTarget? Target { get; init; }

    public ProviderCompletion? Completion { get; init; }

    /// <summary>For streams: the enumerator, already moved to the first event (see <see cref="HasFirstEvent"/>).</summary>
    public ProviderStream? Stream { get; init; }

    public IAsyncEnumerator<StreamEvent>? Events { get; init; }

    public bool HasFirstEvent { get; init; }

    public ProviderFailure? Failure { get; init; }

    /// <summary>True when the answer came from a fallback alias rather than the requested one.</summary>
    public bool FallbackTaken => Target is not null && _requestedAlias is not null && Target.Alias != _requestedAlias;

    private readonly string? _requestedAlias;

    public RoutedResponse(string? requestedAlias = null) => _requestedAlias = requestedAlias;
}

/// <summary>
/// Chooses targets and runs attempts: targets of the alias in weighted random order, then those of each fallback alias;
/// targets cooling down are skipped; connection failures, timeouts before the first byte, 429 and 5xx move on to the
/// next target after a short backoff. A stream counts as started only when its first event has been read, so a stream
/// that breaks before anything reached the client is retried too. Nothing is retried once the relay has written a byte.
/// </summary>
internal sealed class ModelRouter(
    RouteTable routes,
    TargetHealth health,
    IEnumerable<IProviderAdapter> adapters,
    IHttpMessageHandlerFactory handlers,
    IOptions<GatewayOptions> options,
    TimeProvider time)
{
    public const string ProviderHttpClient = "providers";

    /// <summary>
    /// The provider handler chain, sent to directly: its lifetime is infinite (GatewayExtensions), so this is the handler the
    /// factory would hand out anyway, and an <see cref="HttpMessageInvoker"/> spares every attempt what an
    /// <see cref="HttpClient"/> adds on top (a client and its cancellation source per request from the factory, a linked
    /// cancellation source per send; issue 9, allocations per request). Timeouts are the router's (<see cref="ProviderHttp"/>).
    /// </summary>
    private readonly HttpMessageInvoker _http = new(handlers.CreateHandler(ProviderHttpClient), disposeHandler: false);

    private readonly Dictionary<string, IProviderAdapter> _adapters = adapters.ToDictionary(a => a.ProviderType, StringComparer.Ordinal);
    private readonly RoutingOptions _options = options.Value.Routing;
    private readonly bool _captureContent = options.Value.Telemetry.CaptureContent
        || string.Equals(Environment.GetEnvironmentVariable("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"), "true", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// The candidates for an alias, in the order they will be tried: its targets in weighted order, then each fallback
    /// alias's targets in weighted order (one level: a fallback's own fallbacks are not followed). A provider and model
    /// that appear twice are tried once: a second call to the target that just failed would only fail again.
    /// </summary>
    public List<RouteTarget> OrderCandidates(Route route)
    {
        var ordered = new List<RouteTarget>(route.Targets.Count);
        AppendWeighted(route.Targets, ordered);
        foreach (var fallback in route.Fallbacks)
        {
            if (routes.TryGet(fallback, out var fb))
            {
                AppendWeighted(fb.Targets, ordered);
            }
        }
        return ordered;
    }

    private static void AppendWeighted(IReadOnlyList<RouteTarget> targets, List<RouteTarget> into)
    {
        // Weighted shuffle without replacement (Efraimidis–Spirakis, "Weighted random sampling with a reservoir", 2006):
        // key = u^(1/w), highest first, so the first pick is proportional to weight and the rest follow as fallbacks.
        var keyed = new List<(double Key, RouteTarget Target)>(targets.Count);
        foreach (var t in targets)
        {
            if (t.Weight > 0 && !Contains(into, t.Key))
            {
                keyed.Add((targets.Count == 1 ? 1 : Math.Pow(Random.Shared.NextDouble(), 1.0 / t.Weight), t));
            }
        }
        keyed.Sort(static (a, b) => b.Key.CompareTo(a.Key));
        foreach (var (_, t) in keyed)
        {
            into.Add(t);
        }
    }

    private static bool Contains(List<RouteTarget> targets, string key)
    {
        foreach (var t in targets)
        {
            if (t.Key == key)
            {
                return true;
            }
        }
        return false;
    }

    public async Task<RoutedResponse> SendAsync(ChatRequest request, Route route, RequestTags? tags,
        CancellationToken cancellationToken)
    {
        var candidates = OrderCandidates(route);
        var attempts = default(AttemptLog);
        ProviderFailure? lastFailure = null;
        RouteTarget? lastTarget = null;

        var available = new List<RouteTarget>(candidates.Count);
        TimeSpan? soonest = null;
        var allRateLimited = true;
        foreach (var candidate in candidates)
        {
            if (health.TryGetCooling(candidate, out var cooling))
            {
                soonest = soonest is { } s && s <= cooling.Remaining ? s : cooling.Remaining;
                allRateLimited &= cooling.RateLimited;
            }
            else
            {
                available.Add(candidate);
            }
        }
        if (available.Count == 0)
        {
            return new RoutedResponse(route.Alias) { Attempts = attempts, Failure = AllCoolingDown(route.Alias, soonest, allRateLimited) };
        }

        // Set when a lone target's retry-after has just been waited out: its retry must not be skipped as cooling down.
        RouteTarget? waitedFor = null;
        for (var i = 0; i < available.Count && attempts.Count < _options.MaxAttempts; i++)
        {
            var target = available[i];
            if (attempts.Count > 0 && waitedFor is null)
            {
                var backoff = _options.Backoff * Math.Pow(2, attempts.Count - 1);
                if (backoff > TimeSpan.Zero)
                {
                    await Task.Delay(backoff, time, cancellationToken);
                }
            }
            // Another request may have cooled this target down since the list was made.
            if (!ReferenceEquals(target, waitedFor) && health.IsCoolingDown(target))
            {
                continue;
            }
            waitedFor = null;

            var started = Stopwatch.GetTimestamp();
            var adapter = _adapters[target.Provider.Type];
            var parent = Activity.Current;
            var activity = GenAITelemetry.StartAttempt(request, target, attempts.Count + 1, target.Alias != route.Alias, tags, _captureContent);
            ProviderResponse response;
            try
            {
                response = await adapter.SendAsync(new ProviderCall(request, target, _http), cancellationToken);
            }
            catch (OperationCanceledException)
            {
                GenAITelemetry.Cancelled(activity, target, started);
                throw;
            }
            finally
            {
                // The attempt's span stays open for a stream until the relay ends it; later attempts are its siblings.
                Activity.Current = parent;
            }
            lastTarget = target;

            if (response is ProviderStream stream)
            {
                // The stream has begun only when its first event arrives: a break before that is still retryable, and so
                // is an error event in first place (Anthropic reports overload that way), since nothing reached the client.
                var events = stream.ReadEventsAsync(cancellationToken).GetAsyncEnumerator(cancellationToken);
                bool hasFirst;
                try
                {
                    hasFirst = await events.MoveNextAsync();
                }
                catch (Exception ex)
                {
                    // Nobody else will release the upstream response, whatever went wrong (the client's cancellation included).
                    await events.DisposeAsync();
                    stream.Dispose();
                    if (ex is not (IOException or HttpRequestException or TimeoutException or System.Text.Json.JsonException)
                        || cancellationToken.IsCancellationRequested)
                    {
                        GenAITelemetry.Cancelled(activity, target, started);
                        throw;
                    }
                    response = ex is TimeoutException
                        ? ProviderFailure.Timeout($"The provider sent no stream event within {target.Provider.IdleTimeout.TotalSeconds:0.#} s.")
                        : ProviderFailure.ConnectionFailed($"The provider's stream broke before its first event: {ex.Message}");
                    goto failed;
                }
                if (hasFirst && events.Current.Kind == StreamEventKind.Error)
                {
                    response = StreamErrorFailure(events.Current.Json);
                    await events.DisposeAsync();
                    stream.Dispose();
                    goto failed;
                }
                attempts = attempts.Append(new AttemptRecord(attempts.Count + 1, target.Provider.Name, target.Model, 200, Elapsed(started), null));
                health.ReportSuccess(target);
                return new RoutedResponse(route.Alias)
                {
                    Attempts = attempts, Target = target, Stream = stream, HasFirstEvent = hasFirst,
                    Events = GenAITelemetry.ObserveStream(events, hasFirst, activity, target, started),
                };
            }

            if (response is ProviderCompletion completion)
            {
                attempts = attempts.Append(new AttemptRecord(attempts.Count + 1, target.Provider.Name, target.Model, 200, Elapsed(started), null));
                health.ReportSuccess(target);
                GenAITelemetry.Completed(activity, target, completion, started);
                return new RoutedResponse(route.Alias) { Attempts = attempts, Target = target, Completion = completion };
            }

        failed:
            var failure = (ProviderFailure)response;
            GenAITelemetry.Failed(activity, target, failure, started);
            attempts = attempts.Append(new AttemptRecord(attempts.Count + 1, target.Provider.Name, target.Model, failure.StatusCode, Elapsed(started), failure.ErrorType));
            lastFailure = failure;
            if (!failure.Retryable)
            {
                // The request itself was refused (400, or the gateway's own credentials): another target would refuse it too,
                // and the target is healthy, so it is neither retried nor counted against the breaker.
                break;
            }
            var open = health.ReportFailure(target, failure.RetryAfter, rateLimited: failure.StatusCode == 429);

            // The only candidate, told to come back soon: wait it out once rather than fail the client
            // (RFC 9110 §10.2.3). Not when its breaker has opened: then it is left alone for the whole cooldown.
            if (i == available.Count - 1 && attempts.Count == 1 && attempts.Count < _options.MaxAttempts && !open
                && failure.RetryAfter is { } ra && ra > TimeSpan.Zero && ra <= _options.MaxRetryAfterWait)
            {
                await Task.Delay(ra, time, cancellationToken);
                available.Add(target);
                waitedFor = target;
            }
        }

        return new RoutedResponse(route.Alias)
        {
            Attempts = attempts,
            Target = lastTarget,
            Failure = lastFailure ?? AllCoolingDown(route.Alias, _options.Cooldown, rateLimited: false),
        };
    }

    /// <summary>
    /// Every candidate is being skipped. The client learns when the first one is back (<c>retry-after</c>), and a 429 when
    /// they are all held back by the providers' own rate limits, so SDKs back off as they would against the provider.
    /// </summary>
    private static ProviderFailure AllCoolingDown(string alias, TimeSpan? retryAfter, bool rateLimited) => rateLimited
        ? new ProviderFailure(429, "rate_limit_error", "upstream_rate_limited",
            $"Every provider of model '{alias}' is rate limiting the gateway; retry after the time given in retry-after.", retryable: false)
        {
            ErrorType = "cooldown",
            RetryAfter = retryAfter,
        }
        : new ProviderFailure(503, "api_error", "upstream_unavailable",
            $"Every target of model '{alias}' is cooling down after repeated failures; retry shortly.", retryable: false)
        {
            ErrorType = "cooldown",
            RetryAfter = retryAfter,
        };

    /// <summary>An error event in first place of a stream, as a retryable failure carrying the provider's message.</summary>
    private static ProviderFailure StreamErrorFailure(ReadOnlyMemory<byte> json)
    {
        var message = "The provider's stream began with an error.";
        try
        {
            if (System.Text.Json.Nodes.JsonNode.Parse(json.Span)?["error"]?["message"] is System.Text.Json.Nodes.JsonValue m
                && m.TryGetValue<string>(out var text))
            {
                message = $"Provider error: {text}";
            }
        }
        catch (System.Text.Json.JsonException)
        {
            // The message is a courtesy; the failure stands without it.
        }
        return new ProviderFailure(502, "api_error", "upstream_stream_error", message, retryable: true) { ErrorType = "stream_error" };
    }

    private static double Elapsed(long started) => Stopwatch.GetElapsedTime(started).TotalMilliseconds;
}
