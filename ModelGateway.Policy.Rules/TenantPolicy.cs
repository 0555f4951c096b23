using System.Text.Json.Serialization;

namespace ModelGateway.Policy.Rules;

/// <summary>Which engine decides for a tenant.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<PolicyEngineKind>))]
public enum PolicyEngineKind
{
    /// <summary>The rules of <see cref="BuiltIn.BuiltInPolicyEngine"/>, evaluated in process.</summary>
    [JsonStringEnumMemberName("built-in")]
    BuiltIn,

    /// <summary>OPA, reached through the Policy service.</summary>
    [JsonStringEnumMemberName("opa")]
    Opa,
}

/// <summary>
/// A tenant's policy configuration. Every list that is null or empty places no restriction; every rule
/// that cannot be evaluated (unknown time zone, invalid pattern, missing request text) denies.
/// </summary>
public sealed record TenantPolicy
{
    /// <summary>The tenant's engine; <see cref="PolicyEngineKind.BuiltIn"/> by default.</summary>
    public PolicyEngineKind Engine { get; init; } = PolicyEngineKind.BuiltIn;

    /// <summary>
    /// When the OPA engine fails (error, timeout, undefined result) allow instead of deny. Off by default;
    /// every fail-open decision is logged at Warning.
    /// </summary>
    public bool FailOpen { get; init; }

    /// <summary>Model aliases the tenant may use. An entry ending in <c>*</c> matches by prefix.</summary>
    public IReadOnlyList<string>? AllowedModels { get; init; }

    /// <summary>Model aliases the tenant may not use (wins over <see cref="AllowedModels"/>).</summary>
    public IReadOnlyList<string>? DeniedModels { get; init; }

    /// <summary>Provider types the tenant may be routed to. An entry ending in <c>*</c> matches by prefix.</summary>
    public IReadOnlyList<string>? AllowedProviders { get; init; }

    public IReadOnlyList<string>? DeniedProviders { get; init; }

    /// <summary>IANA time zone the <see cref="TimeWindows"/> are written in; UTC when null.</summary>
    public string? TimeZone { get; init; }

    /// <summary>When set, requests are allowed only inside one of these windows.</summary>
    public IReadOnlyList<PolicyTimeWindow>? TimeWindows { get; init; }

    /// <summary>
    /// Regular expressions on the request text; a match denies. Write them in the subset shared by .NET's
    /// non-backtracking engine and RE2 (OPA's): no backreferences, lookarounds or atomic groups; <c>(?i)</c>
    /// for case-insensitive matching.
    /// </summary>
    public IReadOnlyList<string>? DenyPatterns { get; init; }

    /// <summary>Output-token cap per request: requests asking more (or no limit) are lowered to it.</summary>
    public int? MaxOutputTokens { get; init; }

    /// <summary>Requests whose worst-case cost exceeds this are denied.</summary>
    public decimal? MaxUsdPerRequest { get; init; }

    /// <summary>True when the policy needs <see cref="PolicyInput.Text"/>.</summary>
    [JsonIgnore]
    public bool InspectsText => DenyPatterns is { Count: > 0 };

    /// <summary>A policy with no rules (every request allowed, built-in engine).</summary>
    public static TenantPolicy Unrestricted { get; } = new();

    /// <summary>
    /// Problems that make parts of this policy deny everything (unknown time zone, malformed window, invalid
    /// pattern); empty when the policy is sound. Admin APIs should refuse a policy with problems.
    /// </summary>
    public IReadOnlyList<string> Validate() => BuiltIn.CompiledTenantPolicy.Compile(this).Problems;
}

/// <summary>A time-of-day window, in the policy's time zone.</summary>
public sealed record PolicyTimeWindow
{
    /// <summary>
    /// Days the window applies to (<c>mon</c>..<c>sun</c>, any case); every day when null or empty. The day
    /// is the local day of the moment tested, also for windows that wrap past midnight.
    /// </summary>
    public IReadOnlyList<string>? Days { get; init; }

    /// <summary>Start, <c>HH:MM</c>, inclusive.</summary>
    public required string Start { get; init; }

    /// <summary>End, <c>HH:MM</c> (<c>24:00</c> allowed), exclusive. An end at or before the start wraps past midnight.</summary>
    public required string End { get; init; }
}
