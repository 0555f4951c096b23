using System.Text.Json.Serialization;

namespace ModelGateway.Policy.Rules;

/// <summary>The answer of a policy engine for one <see cref="PolicyInput"/>.</summary>
public sealed record PolicyDecision
{
    public required bool Allow { get; init; }

    /// <summary>Why the request was denied (sorted, so both engines give the same order); empty when allowed,
    /// except for a fail-open decision, which says what failed.</summary>
    public IReadOnlyList<string> Reasons { get; init; } = [];

    /// <summary>
    /// A lower output-token cap the caller must apply, or null to keep the request's own. Set when the tenant
    /// caps output tokens and the request asked for more (or for no limit), as the original gateway clamped.
    /// </summary>
    public int? MaxOutputTokens { get; init; }

    /// <summary>Correlates the decision with logs, traces and (for OPA) OPA's own decision log.</summary>
    public required string DecisionId { get; init; }

    /// <summary><see cref="PolicyEngineNames.BuiltIn"/> or <see cref="PolicyEngineNames.Opa"/>.</summary>
    public required string Engine { get; init; }

    /// <summary>True when the engine failed and the tenant's fail-open setting let the request through.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public bool FailOpen { get; init; }

    /// <summary>A new, time-ordered decision id.</summary>
    public static string NewDecisionId() => Uuid7.New().ToString("N");
}

/// <summary>The engine names that appear in decisions, logs and metrics.</summary>
public static class PolicyEngineNames
{
    public const string BuiltIn = "built-in";
    public const string Opa = "opa";
}
