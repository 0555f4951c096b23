using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using ModelGateway.Api.ChatCompletions;
using ModelGateway.Api.Configuration;
using ModelGateway.Api.Errors;
using ModelGateway.Api.Providers;
using ModelGateway.Api.Routing;
using ModelGateway.Api.Streaming;
using ModelGateway.Api.Telemetry;
using Route = ModelGateway.Api.Routing.Route;

namespace ModelGateway.Api.StructuredOutput;

/// <summary>
/// Structured output on the request path, called from <see cref="ChatCompletionsApi"/> at three points:
/// <list type="number">
/// <item><see cref="TryPlan"/> after the alias is resolved and before policy and admission: malformed fields or an invalid
/// schema are a 400 before anything is reserved or any provider called.</item>
/// <item><see cref="EnforceAsync"/> on a non-streaming answer: extract, coerce, validate; if it fails, one repair call when
/// enabled, else the error.</item>
/// <item><see cref="StructuredOutputPlan.CheckStream"/> at the end of a stream, before <c>[DONE]</c>.</item>
/// </list>
/// The provider's own constraint (response_format, Anthropic's forced tool, llama.cpp's grammar) is set by the adapters
/// from the same request fields; this class only checks what comes back.
/// </summary>
internal sealed class StructuredOutputGuard(SchemaCache cache, IOptions<StructuredOutputOptions> options, IOptions<GatewayOptions> gateway,
    ModelRouter router)
{
    private readonly StructuredOutputOptions _options = options.Value;
    private readonly GatewayOptions _gateway = gateway.Value;

    /// <summary>
    /// The plan for <paramref name="request"/>: null when it asks for no structured output. False with a 400 when its
    /// <c>response_format</c>/<c>response_schema</c>/<c>coerce</c>/<c>repair</c> fields are malformed or the schema does not compile.
    /// </summary>
    public bool TryPlan(ChatRequest request, string alias, out StructuredOutputPlan? plan, out OpenAIError? error)
    {
        plan = null;
        if (!ResponseSchema.TryRead(request, out var schema, out error))
        {
            return false;
        }
        bool? repairField = null;
        if (request.Body["repair"] is { } repairNode)
        {
            if (repairNode.GetValueKind() is not (JsonValueKind.True or JsonValueKind.False))
            {
                error = OpenAIError.InvalidRequest("'repair' must be a boolean.", "repair", "invalid_type");
                return false;
            }
            repairField = repairNode.GetValue<bool>();
        }
        if (schema is null)
        {
            return true;
        }
        CompiledSchema? compiled = null;
        if (schema.Schema is { } source)
        {
            compiled = cache.GetOrCompile(source, schema.Param, out error);
            if (compiled is null)
            {
                return false;
            }
        }
        var route = _gateway.Routes.TryGetValue(alias, out var r) ? r.StructuredOutput : null;
        // The request's own field wins, then the route's setting, then the gateway's.
        var coerce = request.Body.ContainsKey("coerce") ? schema.Coerce : route?.Coerce ?? _options.Coerce;
        // A stream's bytes are with the client before the end is checked: there is nothing left to repair.
        var repair = !request.Stream && (repairField ?? route?.Repair ?? _options.Repair);
        plan = new StructuredOutputPlan(schema, compiled, coerce, repair);
        return true;
    }

    /// <summary>
    /// Checks a non-streaming answer. Valid: the completion to send, its content replaced by the extracted/coerced JSON when
    /// that differs from the model's text. Invalid: one repair call when the plan allows, else the 502 naming every violation.
    /// </summary>
    public async Task<StructuredOutcome> EnforceAsync(StructuredOutputPlan plan, ChatRequest request, Route route, ProviderCompletion completion,
        RequestTags? tags, CancellationToken cancellationToken)
    {
        var first = plan.Check(completion.Completion);
        if (first is null || first.IsValid)
        {
            return new StructuredOutcome(completion.Completion, null, null);
        }
        if (!plan.Repair)
        {
            return new StructuredOutcome(null, first.ToError(), null);
        }

        var repairRequest = RepairPrompt.BuildRequest(request, StructuredOutputPlan.ContentOf(completion.Completion), first.Violations);
        var routed = await router.SendAsync(repairRequest, route, tags, cancellationToken);
        if (routed.Completion is not { } repaired)
        {
            routed.Stream?.Dispose();
            var reason = routed.Failure?.Message ?? "the provider answered with a stream";
            plan.Failed(first.Violations);
            return new StructuredOutcome(null, StructuredOutputErrors.Invalid(first.Violations, $"The repair attempt failed: {reason}"),
                new RepairCall(default, 0, routed.Attempts));
        }
        using (repaired)
        {
            var usage = repaired.Usage;
            var cost = routed.Target is { } target ? target.Prices.CostMicroUsd(usage.InputTokens, usage.OutputTokens, usage.CachedInputTokens) : 0;
            var call = new RepairCall(usage, cost, routed.Attempts);
            var second = plan.Check(repaired.Completion, repairing: first.Violations);
            if (second is { IsValid: false })
            {
                return new StructuredOutcome(null, second.ToError("(after one repair attempt)"), call);
            }
            // The client pays for both calls, so the usage it sees is the sum.
            repaired.Completion["usage"] = completion.Usage.Plus(usage).ToOpenAIUsage();
            return new StructuredOutcome(repaired.Completion, null, call);
        }
    }
}

/// <summary>The verdict on a non-streaming answer: the completion to write, or the error; and the repair call if one was made.</summary>
internal sealed record StructuredOutcome(JsonObject? Completion, OpenAIError? Error, RepairCall? Repair);

/// <summary>A repair call: what it used and cost (priced at the target that answered it), and its attempts for the trace.</summary>
internal sealed record RepairCall(TokenUsage Usage, long CostMicroUsd, AttemptLog Attempts);

/// <summary>
/// One request's structured-output settings, and after the answer, its result for the trace: <c>valid</c>, <c>extracted</c>
/// (JSON found in a fence or prose), <c>coerced</c>, <c>repaired</c>, <c>invalid</c>, or <c>skipped</c> (the model called
/// one of the client's own tools instead). Null result: nothing was checked (no answer, or a stream that broke off).
/// </summary>
internal sealed class StructuredOutputPlan(ResponseSchema schema, CompiledSchema? compiled, bool coerce, bool repair)
{
    private const int MaxTracedViolations = 20;

    private IReadOnlyList<SchemaViolation> _violations = [];

    public ResponseSchema Schema { get; } = schema;

    public bool Coerce { get; } = coerce;

    /// <summary>Whether a failing non-streaming answer gets one repair call.</summary>
    public bool Repair { get; } = repair;

    public string? Result { get; private set; }

    /// <summary>
    /// The tokens to reserve: one call, or with repair two, the second prompt carrying the first output and the errors.
    /// Prices are linear in tokens, so the sums price the worst case of both calls.
    /// </summary>
    public (int PromptTokens, int OutputTokens) WorstCase(int promptTokens, int maxOutputTokens) => Repair
        ? (2 * promptTokens + maxOutputTokens + RepairPrompt.ReserveTokens, 2 * maxOutputTokens)
        : (promptTokens, maxOutputTokens);

    /// <summary>The first choice's message content (null when it has none).</summary>
    public static string? ContentOf(JsonObject completion) =>
        completion["choices"]?[0]?["message"]?["content"] is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : null;

    /// <summary>
    /// Checks a completion and, when valid, puts the clean JSON into its content. Null when there is nothing to check: the
    /// model called one of the client's own tools (the schema applies to answers, not to tool calls).
    /// </summary>
    internal OutputCheck? Check(JsonObject completion, IReadOnlyList<SchemaViolation>? repairing = null)
    {
        if (completion["choices"]?[0]?["message"] is not JsonObject message)
        {
            return Record(OutputValidator.Check(Schema, compiled, null, Coerce), repairing);
        }
        if (message["tool_calls"] is JsonArray { Count: > 0 })
        {
            Result = "skipped";
            return null;
        }
        var content = ContentOf(completion);
        var check = OutputValidator.Check(Schema, compiled, content, Coerce);
        if (check.IsValid && check.Content != content)
        {
            message["content"] = check.Content;
        }
        return Record(check, repairing);
    }

    /// <summary>
    /// The end-of-stream check, run by the relay before <c>[DONE]</c>: the assembled content must be valid as sent (see
    /// <see cref="OutputValidator.Check"/>). Returns the error event to send instead of <c>[DONE]</c>, or null.
    /// </summary>
    public OpenAIError? CheckStream(SseRelay.Outcome outcome)
    {
        if (outcome.FinishReason == "tool_calls")
        {
            Result = "skipped";
            return null;
        }
        var check = Record(OutputValidator.Check(Schema, compiled, outcome.Content.ToString(), Coerce, asSent: true), null);
        return check.IsValid ? null : check.ToError();
    }

    internal void Failed(IReadOnlyList<SchemaViolation> violations) => (Result, _violations) = ("invalid", violations);

    private OutputCheck Record(OutputCheck check, IReadOnlyList<SchemaViolation>? repairing)
    {
        (Result, _violations) = check.IsValid
            ? (repairing is not null ? "repaired" : check.Coerced ? "coerced" : check.Extracted ? "extracted" : "valid", repairing ?? [])
            : ("invalid", check.Violations);
        return check;
    }

    /// <summary>
    /// The trace's <c>structured_output</c> (jsonb): result, schema hash, source, and the violations that failed the output
    /// (for <c>repaired</c>, those the repair fixed).
    /// </summary>
    public string? ToTraceJson()
    {
        if (Result is null)
        {
            return null;
        }
        var errors = new JsonArray();
        for (var i = 0; i < _violations.Count && i < MaxTracedViolations; i++)
        {
            var v = _violations[i];
            errors.Add(new JsonObject { ["pointer"] = v.Pointer, ["keyword"] = v.Keyword, ["message"] = v.Message });
        }
        return new JsonObject
        {
            ["result"] = Result,
            ["source"] = Schema.Source switch
            {
                ResponseSchemaSource.JsonObject => "json_object",
                ResponseSchemaSource.Extension => "response_schema",
                _ => "json_schema",
            },
            ["schema_sha256"] = compiled?.Hash,
            ["coerce"] = Coerce,
            ["repair"] = Repair,
            ["errors"] = errors,
        }.ToJsonString();
    }
}
