using Microsoft.Extensions.Options;
using ModelGateway.Api.Configuration;

namespace ModelGateway.Api.Routing;

/// <summary>Prices in integer micro-dollars per million tokens, so cost arithmetic never touches floating point.</summary>
internal readonly record struct Prices(long InputMicroUsdPerMillion, long OutputMicroUsdPerMillion, long CachedInputMicroUsdPerMillion)
{
    /// <summary>Cost in micro-dollars, rounded up so the gateway never under-bills a fraction.</summary>
    public long CostMicroUsd(long inputTokens, long outputTokens, long cachedInputTokens = 0)
    {
        var uncached = Math.Max(0, inputTokens - cachedInputTokens);
        var numerator = checked(uncached * InputMicroUsdPerMillion + cachedInputTokens * CachedInputMicroUsdPerMillion
                                + outputTokens * OutputMicroUsdPerMillion);
        return (numerator + 999_999) / 1_000_000;
    }

    public static long ToMicroUsd(decimal usd) => (long)decimal.Round(usd * 1_000_000m, 0, MidpointRounding.AwayFromZero);
}

/// <summary>A provider as the adapters need it.</summary>
internal sealed record ProviderEndpoint(string Name, string Type, Uri BaseUrl, string? ApiKey, TimeSpan FirstByteTimeout,
    TimeSpan IdleTimeout, IReadOnlyDictionary<string, string> Headers);

/// <summary>One place an alias can go: a provider, the upstream model, a weight and prices.</summary>
internal sealed record RouteTarget(string Alias, ProviderEndpoint Provider, string Model, int Weight, Prices Prices, int DefaultMaxTokens)
{
    /// <summary>Key of the circuit breaker: a provider and model fail together.</summary>
    public string Key { get; } = Provider.Name + "/" + Model;

    /// <summary>The attempt span's name (GenAI conventions: <c>{operation} {model}</c>), built once.</summary>
    public string SpanName { get; } = "chat " + Model;
}

internal sealed record Route(string Alias, IReadOnlyList<RouteTarget> Targets, IReadOnlyList<string> Fallbacks, int DefaultMaxTokens)
{
    /// <summary>The most expensive output price among the targets: the worst case a reservation must cover.</summary>
    public Prices WorstCasePrices { get; } = new(
        Targets.Max(t => t.Prices.InputMicroUsdPerMillion),
        Targets.Max(t => t.Prices.OutputMicroUsdPerMillion),
        Targets.Max(t => t.Prices.CachedInputMicroUsdPerMillion));
}

/// <summary>The routes, built once from validated options.</summary>
internal sealed class RouteTable
{
    private readonly Dictionary<string, Route> _routes;

    public RouteTable(IOptions<GatewayOptions> options)
    {
        var o = options.Value;
        var providers = o.Providers.ToDictionary(p => p.Key, p => new ProviderEndpoint(p.Key, p.Value.Type,
            new Uri(p.Value.BaseUrl.TrimEnd('/') + "/"), string.IsNullOrWhiteSpace(p.Value.ApiKey) ? null : p.Value.ApiKey,
            p.Value.FirstByteTimeout, p.Value.IdleTimeout, p.Value.Headers), StringComparer.Ordinal);
        _routes = new Dictionary<string, Route>(StringComparer.Ordinal);
        foreach (var (alias, route) in o.Routes)
        {
            var targets = route.Targets.Select(t => new RouteTarget(alias, providers[t.Provider], t.Model, t.Weight,
                new Prices(
                    t.CostPer1kInput is { } in1k ? Prices.ToMicroUsd(in1k * 1000) : Prices.ToMicroUsd(t.InputPerMillion),
                    t.CostPer1kOutput is { } out1k ? Prices.ToMicroUsd(out1k * 1000) : Prices.ToMicroUsd(t.OutputPerMillion),
                    Prices.ToMicroUsd(t.CachedInputPerMillion ?? (t.CostPer1kInput is { } c1k ? c1k * 1000 : t.InputPerMillion))),
                route.DefaultMaxTokens)).ToList();
            _routes[alias] = new Route(alias, targets, route.Fallbacks, route.DefaultMaxTokens);
        }
    }

    public IEnumerable<string> Aliases => _routes.Keys;

    public bool TryGet(string alias, out Route route) => _routes.TryGetValue(alias, out route!);
}
