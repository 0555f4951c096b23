using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;
using ModelGateway.Policy.Opa;
using ModelGateway.Policy.Rules;
using ModelGateway.Policy.Rules.Decisions;
using ModelGateway.Policy.Security;

namespace ModelGateway.Policy.Decisions;

/// <summary>
/// The service's two decision endpoints.
/// <list type="bullet">
/// <item><c>POST /api/policy/decide</c>: <c>{input, policy}</c> → <see cref="PolicyDecision"/>; what the Api
/// calls for OPA tenants. Accepts the service key (<c>x-policy-key</c>) or the admin key (Bearer).</item>
/// <item><c>POST /api/opa/decide</c>: the original gateway's endpoint; body = OPA input, answer = OPA's
/// <c>result</c> as-is. Admin key only.</item>
/// </list>
/// </summary>
internal static partial class PolicyApi
{
    public static IEndpointRouteBuilder MapPolicyApi(this IEndpointRouteBuilder endpoints)
    {
        var api = endpoints.MapGroup("/api");
        api.MapPost("/policy/decide", DecideAsync);
        api.MapPost("/opa/decide", OpaDecideAsync);
        return endpoints;
    }

    /// <summary>The handlers' services, gathered with <c>[AsParameters]</c>.</summary>
    internal sealed record Services(
        KeyAuthorizer Keys,
        IPolicyEngine Engine,
        OpaEvaluator Opa,
        IOptions<OpaOptions> OpaOptions,
        TimeProvider Time,
        ILogger<Services> Logger);

    public static async Task<IResult> DecideAsync(HttpRequest request, [AsParameters] Services d, CancellationToken cancellationToken)
    {
        if (!d.Keys.IsService(request) && !d.Keys.IsAdmin(request))
        {
            return Unauthorized(request);
        }

        PolicyDecisionRequest? body;
        try
        {
            body = await JsonSerializer.DeserializeAsync(request.Body, PolicyJsonContext.Default.PolicyDecisionRequest, cancellationToken);
        }
        catch (JsonException e)
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: "Invalid decision request", detail: e.Message);
        }

        if (body is null)
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: "Invalid decision request", detail: "Expected {\"input\": ..., \"policy\": ...}.");
        }

        var decision = await d.Engine.DecideAsync(body.Input, body.Policy, cancellationToken);
        return TypedResults.Json(decision, PolicyJsonContext.Default.PolicyDecision);
    }

    public static async Task<IResult> OpaDecideAsync(HttpRequest request, [AsParameters] Services d, CancellationToken cancellationToken)
    {
        if (!d.Keys.IsAdmin(request))
        {
            return Unauthorized(request);
        }

        // The original forwarded to OPA when configured and allowed everything otherwise; we never
        // answer for OPA without OPA.
        if (!d.OpaOptions.Value.IsConfigured)
        {
            return TypedResults.Problem(
                statusCode: StatusCodes.Status503ServiceUnavailable,
                title: "OPA is not configured",
                detail: "Set Policy:Opa:Url to use this endpoint. Without OPA, decisions come from the built-in engine (POST /api/policy/decide).");
        }

        JsonNode? input;
        try
        {
            input = await JsonNode.ParseAsync(request.Body, cancellationToken: cancellationToken);
        }
        catch (JsonException e)
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: "The body must be the OPA input as JSON", detail: e.Message);
        }

        using var activity = PolicyTelemetry.ActivitySource.StartActivity("policy.opa.passthrough");
        var started = d.Time.GetTimestamp();
        var outcome = await d.Opa.EvaluateAsync(input, cancellationToken);
        var elapsedMs = d.Time.GetElapsedTime(started).TotalMilliseconds;
        var digest = PolicyDigest.Of(Encoding.UTF8.GetBytes(input?.ToJsonString() ?? "null"));
        LogPassthrough(d.Logger, outcome.DecisionId ?? "-", outcome.Kind, elapsedMs, digest);
        activity?.SetTag("policy.engine", PolicyEngineNames.Opa);
        activity?.SetTag("policy.opa.outcome", outcome.Kind.ToString());
        if (outcome.Kind != OpaOutcomeKind.Result)
        {
            activity?.SetStatus(ActivityStatusCode.Error, outcome.Detail);
        }

        return outcome.Kind switch
        {
            OpaOutcomeKind.Result => TypedResults.Text(outcome.Result!.Value.GetRawText(), "application/json", Encoding.UTF8),
            // Like OPA's own webhook API (POST /v0/data), an undefined document is a 404.
            OpaOutcomeKind.Undefined => TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Decision undefined", detail: outcome.Detail),
            // A bad input is the caller's to fix: hand back OPA's error object unchanged.
            OpaOutcomeKind.Error when outcome.Status == HttpStatusCode.BadRequest && outcome.ParsedError is not null
                => TypedResults.Text(outcome.ErrorBody!, "application/json", Encoding.UTF8, StatusCodes.Status400BadRequest),
            OpaOutcomeKind.Timeout => TypedResults.Problem(statusCode: StatusCodes.Status504GatewayTimeout, title: "OPA timed out", detail: outcome.Detail),
            _ => TypedResults.Problem(statusCode: StatusCodes.Status502BadGateway, title: "OPA failed", detail: outcome.Detail),
        };
    }

    private static IResult Unauthorized(HttpRequest request)
    {
        // RFC 6750 §3: a missing or wrong bearer token is a 401 with a challenge.
        request.HttpContext.Response.Headers[HeaderNames.WWWAuthenticate] = "Bearer";
        return TypedResults.Problem(statusCode: StatusCodes.Status401Unauthorized, title: "A valid admin or service key is required");
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "OPA passthrough decision {DecisionId}: {Outcome} in {LatencyMs:F3} ms (input sha256 {InputDigest})")]
    private static partial void LogPassthrough(ILogger logger, string decisionId, OpaOutcomeKind outcome, double latencyMs, string inputDigest);
}
