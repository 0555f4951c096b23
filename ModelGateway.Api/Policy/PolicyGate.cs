using System.Text;
using System.Text.Json.Nodes;
using ModelGateway.Api.ChatCompletions;
using ModelGateway.Api.Errors;
using Route = ModelGateway.Api.Routing.Route;
using ModelGateway.Api.Tenancy;
using ModelGateway.Policy.Rules;

namespace ModelGateway.Api.Policy;

/// <summary>
/// Step 4 of the request path: the tenant's policy decides before any money is spent. Built-in rules run in process;
/// tenants configured for OPA are decided by the Policy service (<see cref="IPolicyEngine"/> routes between the two).
/// A denial is a 403 <c>permission_error</c> / <c>policy_denied</c> naming the reasons; a lowered token cap is applied.
/// </summary>
internal sealed class PolicyGate(IPolicyEngine engine, TimeProvider time)
{
    /// <summary>
    /// The decision, or an error to return to the client. <paramref name="inputTokens"/> is the prompt as the request path
    /// counted it once for the cost cap and admission (the tokenizer is the dearest step before the upstream call).
    /// </summary>
    public async ValueTask<(PolicyDecision? Decision, OpenAIError? Error)> DecideAsync(HttpContext context, Caller caller, ChatRequest request,
        Route route, int inputTokens, CancellationToken cancellationToken)
    {
        var policy = caller.Tenant.Policy;
        var maxOutput = request.MaxTokens ?? route.DefaultMaxTokens;
        var worstCaseMicroUsd = route.WorstCasePrices.CostMicroUsd(inputTokens, maxOutput);
        var input = new PolicyInput
        {
            Tenant = caller.Tenant.Id,
            KeyId = caller.KeyId,
            Model = request.Model,
            Provider = route.Targets[0].Provider.Type,
            EstimatedInputTokens = inputTokens,
            MaxOutputTokens = maxOutput,
            EstimatedCostUsd = worstCaseMicroUsd / 1_000_000m,
            Stream = request.Stream,
            HasTools = request.Tools is { Count: > 0 },
            ResponseFormat = request.ResponseFormat?["type"]?.GetValue<string>() ?? (request.Body["response_schema"] is not null ? "json_schema" : null),
            ClientIp = context.Connection.RemoteIpAddress?.ToString(),
            Time = time.GetUtcNow(),
            // Content goes to policy only when the tenant's rules look at it (deny patterns).
            Text = policy.InspectsText ? JoinText(request.Messages) : null,
        };
        var decision = await engine.DecideAsync(input, policy, cancellationToken);
        context.Items[typeof(PolicyDecision)] = decision;
        if (!decision.Allow)
        {
            var reasons = decision.Reasons is { Count: > 0 } r ? string.Join("; ", r) : "denied by policy";
            return (decision, new OpenAIError(403, $"Request denied by policy: {reasons}", "permission_error", null, "policy_denied"));
        }
        if (decision.MaxOutputTokens is { } cap)
        {
            request.ClampMaxTokens(cap);
        }
        return (decision, null);
    }

    private static string JoinText(JsonArray messages)
    {
        var sb = new StringBuilder();
        foreach (var message in messages)
        {
            switch (message?["content"])
            {
                case JsonValue v when v.TryGetValue<string>(out var s):
                    sb.Append(s).Append('\n');
                    break;
                case JsonArray parts:
                    foreach (var part in parts)
                    {
                        if (part?["text"] is JsonValue t && t.TryGetValue<string>(out var text))
                        {
                            sb.Append(text).Append('\n');
                        }
                    }
                    break;
            }
        }
        return sb.ToString();
    }
}
