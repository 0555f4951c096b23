using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using ModelGateway.Policy.Rules;
using ModelGateway.Policy.Rules.Decisions;

namespace ModelGateway.Policy.Opa;

/// <summary>
/// Decides through OPA: sends the input, with the tenant's policy as <c>input.policy</c>, to the configured
/// rule and reads <c>{allow, reasons, max_output_tokens}</c> back. Anything but a well-formed result
/// (error, timeout, undefined, malformed) throws <see cref="PolicyEngineException"/>, which
/// <see cref="PolicyDecider"/> turns into a fail-closed (or per-tenant fail-open) decision.
/// </summary>
internal sealed class OpaPolicyEngine(
    OpaEvaluator evaluator,
    OpaDecisionCache cache,
    PolicyTelemetry telemetry,
    IOptions<OpaOptions> options) : IRemotePolicyEngine
{
    public string Name => PolicyEngineNames.Opa;

    public bool IsConfigured => options.Value.IsConfigured;

    public async ValueTask<PolicyDecision> DecideAsync(PolicyInput input, TenantPolicy policy, CancellationToken cancellationToken)
    {
        var key = OpaDecisionCache.KeyFor(input, policy);
        if (cache.TryGet(key, out var cached))
        {
            telemetry.CacheLookup(hit: true);
            return cached with { DecisionId = PolicyDecision.NewDecisionId() };
        }

        telemetry.CacheLookup(hit: false);
        var outcome = await evaluator.EvaluateAsync(BuildInput(input, policy), cancellationToken).ConfigureAwait(false);
        if (outcome.Kind != OpaOutcomeKind.Result)
        {
            throw new PolicyEngineException(outcome.Detail);
        }

        var decision = Interpret(outcome.Result!.Value, outcome.DecisionId);
        cache.Set(key, decision);
        return decision;
    }

    /// <summary>The OPA input document: the <see cref="PolicyInput"/> fields, plus the tenant policy as <c>policy</c>.</summary>
    internal static JsonObject BuildInput(PolicyInput input, TenantPolicy policy)
    {
        var node = JsonSerializer.SerializeToNode(input, PolicyJsonContext.Default.PolicyInput)!.AsObject();
        node["policy"] = JsonSerializer.SerializeToNode(policy, PolicyJsonContext.Default.TenantPolicy);
        return node;
    }

    private static PolicyDecision Interpret(JsonElement result, string? opaDecisionId)
    {
        OpaDecisionResult? parsed;
        try
        {
            parsed = result.ValueKind == JsonValueKind.Object ? result.Deserialize(OpaJsonContext.Default.OpaDecisionResult) : null;
        }
        catch (JsonException)
        {
            parsed = null;
        }

        // Only a literal boolean counts: a policy that forgot "allow" must not allow.
        if (parsed?.Allow is not { } allow)
        {
            throw new PolicyEngineException("OPA result is not a decision object with a boolean \"allow\"");
        }

        return new PolicyDecision
        {
            Allow = allow,
            Reasons = parsed.Reasons ?? [],
            MaxOutputTokens = parsed.MaxOutputTokens is > 0 ? parsed.MaxOutputTokens : null,
            DecisionId = string.IsNullOrEmpty(opaDecisionId) ? PolicyDecision.NewDecisionId() : opaDecisionId,
            Engine = PolicyEngineNames.Opa,
        };
    }
}
