using System.Diagnostics;
using Microsoft.Extensions.Options;
using ModelGateway.Api.ChatCompletions;
using ModelGateway.Api.Configuration;
using ModelGateway.Api.Providers;

namespace ModelGateway.Api.Routing;

/// <summary>One upstream attempt, as traces record it.</summary>
internal sealed record AttemptRecord(int Number, string Provider, string Model, int? Status, double LatencyMs, string? ErrorType);

/// <summary>The outcome of routing: a response from some target, or the last failure when every attempt failed.</summary>
internal sealed class RoutedResponse
{
    public required IReadOnlyList<AttemptRecord> Attempts { get; init; }

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
    IHttpClientFactory httpClientFactory,
    IOptions<GatewayOptions> options,
    TimeProvider time)
{
    public const string ProviderHttpClient = "providers";

    private readonly Dictionary<string, IProviderAdapter> _adapters = adapters.ToDictionary(a => a.ProviderType, StringComparer.Ordinal);
    private readonly RoutingOptions _options = options.Value.Routing;

    /// <summary>The candidates for an alias, in the order they will be tried.</summary>
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
        // Weighted shuffle without replacement (Efraimidis–Spirakis): key = u^(1/w), highest first.
        if (targets.Count == 1)
        {
            if (targets[0].Weight > 0)
            {
                into.Add(targets[0]);
            }
            return;
        }
        var keyed = new List<(double Key, RouteTarget Target)>(targets.Count);
        foreach (var t in targets)
        {
            if (t.Weight > 0)
            {
                keyed.Add((Math.Pow(Random.Shared.NextDouble(), 1.0 / t.Weight), t));
            }
        }
        keyed.Sort(static (a, b) => b.Key.CompareTo(a.Key));
        foreach (var (_, t) in keyed)
        {
            into.Add(t);
        }
    }

    public async Task<RoutedResponse> SendAsync(ChatRequest request, Route route, Action<RouteTarget, int>? onAttempt,
        CancellationToken cancellationToken)
    {
        var candidates = OrderCandidates(route);
        var attempts = new List<AttemptRecord>(2);
        var http = httpClientFactory.CreateClient(ProviderHttpClient);
        ProviderFailure? lastFailure = null;
        RouteTarget? lastTarget = null;

        var available = candidates.Where(c => !health.IsCoolingDown(c)).ToList();
        if (available.Count == 0)
        {
            return new RoutedResponse(route.Alias)
            {
                Attempts = attempts,
                Failure = new ProviderFailure(503, "api_error", "upstream_unavailable",
                    $"Every target of model '{route.Alias}' is cooling down after repeated failures; retry shortly.", retryable: false)
                {
                    ErrorType = "cooldown",
                    RetryAfter = _options.Cooldown,
                },
            };
        }

        for (var i = 0; i < available.Count && attempts.Count < _options.MaxAttempts; i++)
        {
            var target = available[i];
            if (attempts.Count > 0)
            {
                var backoff = _options.Backoff * Math.Pow(2, attempts.Count - 1);
                if (backoff > TimeSpan.Zero)
                {
                    await Task.Delay(backoff, time, cancellationToken);
                }
            }
            if (health.IsCoolingDown(target))
            {
                continue;
            }

            onAttempt?.Invoke(target, attempts.Count + 1);
            var started = Stopwatch.GetTimestamp();
            var adapter = _adapters[target.Provider.Type];
            var response = await adapter.SendAsync(new ProviderCall(request, target, http), cancellationToken);
            lastTarget = target;

            if (response is ProviderStream stream)
            {
                // The stream has begun only when its first event arrives: a break before that is still retryable.
                var events = stream.ReadEventsAsync(cancellationToken).GetAsyncEnumerator(cancellationToken);
                bool hasFirst;
                try
                {
                    hasFirst = await events.MoveNextAsync();
                }
                catch (Exception ex) when (ex is IOException or HttpRequestException or TimeoutException or System.Text.Json.JsonException
                                           && !cancellationToken.IsCancellationRequested)
                {
                    await events.DisposeAsync();
                    stream.Dispose();
                    response = ex is TimeoutException
                        ? ProviderFailure.Timeout($"The provider sent no stream event within {target.Provider.IdleTimeout.TotalSeconds:0.#} s.")
                        : ProviderFailure.ConnectionFailed($"The provider's stream broke before its first event: {ex.Message}");
                    goto failed;
                }
                attempts.Add(new AttemptRecord(attempts.Count + 1, target.Provider.Name, target.Model, 200, Elapsed(started), null));
                health.ReportSuccess(target);
                return new RoutedResponse(route.Alias) { Attempts = attempts, Target = target, Stream = stream, Events = events, HasFirstEvent = hasFirst };
            }

            if (response is ProviderCompletion completion)
            {
                attempts.Add(new AttemptRecord(attempts.Count + 1, target.Provider.Name, target.Model, 200, Elapsed(started), null));
                health.ReportSuccess(target);
                return new RoutedResponse(route.Alias) { Attempts = attempts, Target = target, Completion = completion };
            }

        failed:
            var failure = (ProviderFailure)response;
            attempts.Add(new AttemptRecord(attempts.Count + 1, target.Provider.Name, target.Model, failure.StatusCode, Elapsed(started), failure.ErrorType));
            lastFailure = failure;
            if (!failure.Retryable)
            {
                break;
            }
            health.ReportFailure(target, failure.RetryAfter);

            // Alone and told to come back soon: wait it out once rather than fail the client.
            if (i == available.Count - 1 && attempts.Count < _options.MaxAttempts
                && failure.RetryAfter is { } ra && ra <= _options.MaxRetryAfterWait && attempts.Count == 1)
            {
                await Task.Delay(ra, time, cancellationToken);
                available.Add(target);
                health.ReportSuccess(target);
            }
        }

        return new RoutedResponse(route.Alias)
        {
            Attempts = attempts,
            Target = lastTarget,
            Failure = lastFailure ?? new ProviderFailure(503, "api_error", "upstream_unavailable",
                $"No target of model '{route.Alias}' is available.", retryable: false) { ErrorType = "cooldown" },
        };
    }

    private static double Elapsed(long started) => Stopwatch.GetElapsedTime(started).TotalMilliseconds;
}
