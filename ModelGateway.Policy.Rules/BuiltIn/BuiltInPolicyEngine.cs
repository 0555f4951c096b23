using System.Runtime.CompilerServices;
using System.Text.RegularExpressions;

namespace ModelGateway.Policy.Rules.BuiltIn;

/// <summary>
/// The built-in rules, evaluated in process on every request of tenants that do not use OPA. Pure (the
/// decision depends only on the input and the policy; time comes from <see cref="PolicyInput.Time"/>) and
/// cheap: no allocation beyond the decision itself when a request is allowed, and a policy's regexes and
/// time zone are prepared once per policy instance.
/// </summary>
/// <remarks>
/// Rules, all of which are checked so a denial lists every reason (sorted ordinally):
/// allowed / denied models; allowed / denied providers; time-of-day windows; deny patterns on the request
/// text; maximum cost per request. The output-token cap never denies: it lowers
/// <see cref="PolicyDecision.MaxOutputTokens"/>. <c>policies/gateway.rego</c> implements the same rules.
/// </remarks>
public sealed class BuiltInPolicyEngine : IPolicyEngine
{
    // Keyed by policy instance: the Api keeps one TenantPolicy per cached tenant, so it compiles once and
    // is collected with the tenant. Patterns are additionally shared across instances (see CompiledTenantPolicy).
    private readonly ConditionalWeakTable<TenantPolicy, CompiledTenantPolicy> _compiled = new();

    public ValueTask<PolicyDecision> DecideAsync(PolicyInput input, TenantPolicy policy, CancellationToken cancellationToken)
        => ValueTask.FromResult(Decide(input, policy));

    public PolicyDecision Decide(PolicyInput input, TenantPolicy policy)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(policy);

        var compiled = _compiled.GetValue(policy, CompiledTenantPolicy.Compile);
        List<string>? reasons = null;

        if (policy.AllowedModels is { Count: > 0 } allowedModels && !MatchesAny(input.Model, allowedModels))
        {
            (reasons ??= []).Add(PolicyReasons.ModelNotAllowed(input.Model));
        }

        if (policy.DeniedModels is { Count: > 0 } deniedModels && MatchesAny(input.Model, deniedModels))
        {
            (reasons ??= []).Add(PolicyReasons.ModelDenied(input.Model));
        }

        CheckProvider(input.Provider, policy, ref reasons);

        if (compiled.Windows.Length > 0 && !InAnyWindow(input.Time, compiled))
        {
            (reasons ??= []).Add(PolicyReasons.OutsideTimeWindows);
        }

        if (compiled.Patterns.Length > 0)
        {
            CheckText(input.Text, compiled.Patterns, ref reasons);
        }

        if (policy.MaxUsdPerRequest is { } maxUsd && input.EstimatedCostUsd > maxUsd)
        {
            (reasons ??= []).Add(PolicyReasons.CostExceeded);
        }

        // Clamp, as the original gateway did: a cap lowers a larger (or missing) request limit.
        int? maxOutputTokens = policy.MaxOutputTokens is > 0 and var cap && !(input.MaxOutputTokens <= cap) ? cap : null;

        reasons?.Sort(StringComparer.Ordinal);
        return new PolicyDecision
        {
            Allow = reasons is null,
            Reasons = reasons ?? (IReadOnlyList<string>)[],
            MaxOutputTokens = maxOutputTokens,
            DecisionId = PolicyDecision.NewDecisionId(),
            Engine = PolicyEngineNames.BuiltIn,
        };
    }

    private static void CheckProvider(string? provider, TenantPolicy policy, ref List<string>? reasons)
    {
        var allowed = policy.AllowedProviders is { Count: > 0 } a ? a : null;
        var denied = policy.DeniedProviders is { Count: > 0 } d ? d : null;
        if (allowed is null && denied is null)
        {
            return;
        }

        if (provider is null)
        {
            // Rules about providers cannot be checked without one: deny rather than guess.
            (reasons ??= []).Add(PolicyReasons.ProviderMissing);
            return;
        }

        if (allowed is not null && !MatchesAny(provider, allowed))
        {
            (reasons ??= []).Add(PolicyReasons.ProviderNotAllowed(provider));
        }

        if (denied is not null && MatchesAny(provider, denied))
        {
            (reasons ??= []).Add(PolicyReasons.ProviderDenied(provider));
        }
    }

    private static void CheckText(string? text, CompiledTenantPolicy.Pattern[] patterns, ref List<string>? reasons)
    {
        if (text is null)
        {
            (reasons ??= []).Add(PolicyReasons.TextMissing);
        }

        foreach (var pattern in patterns)
        {
            if (pattern.Regex is null)
            {
                (reasons ??= []).Add(PolicyReasons.PatternInvalid(pattern.Number));
                continue;
            }

            if (text is null)
            {
                continue;
            }

            try
            {
                if (pattern.Regex.IsMatch(text))
                {
                    (reasons ??= []).Add(PolicyReasons.PatternMatched(pattern.Number));
                }
            }
            catch (RegexMatchTimeoutException)
            {
                (reasons ??= []).Add(PolicyReasons.PatternTimedOut(pattern.Number));
            }
        }
    }

    private static bool InAnyWindow(DateTimeOffset time, CompiledTenantPolicy compiled)
    {
        if (compiled.TimeZone is null)
        {
            return false; // unknown time zone: no window can be checked, so none is open
        }

        var local = TimeZoneInfo.ConvertTime(time, compiled.TimeZone);
        var minute = (local.Hour * 60) + local.Minute;
        foreach (var window in compiled.Windows)
        {
            if (window.Contains(minute, local.DayOfWeek))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Exact, case-sensitive match; an entry ending in <c>*</c> matches by prefix.</summary>
    internal static bool MatchesAny(string value, IReadOnlyList<string> entries)
    {
        for (var i = 0; i < entries.Count; i++)
        {
            var entry = entries[i];
            if (entry.EndsWith('*')
                    ? value.AsSpan().StartsWith(entry.AsSpan(0, entry.Length - 1), StringComparison.Ordinal)
                    : string.Equals(value, entry, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }
}
