using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Refit;

namespace ModelGateway.Policy.Opa;

/// <summary>
/// OPA's REST API, the two calls we make. Contract: https://www.openpolicyagent.org/docs/rest-api
/// ("Get a Document (with Input)" and "Health API").
/// </summary>
internal interface IOpaClient
{
    /// <summary>
    /// <c>POST /v1/data/{path}</c> with <c>{"input": ...}</c>: 200 <c>{"result": ...}</c>, or 200 <c>{}</c>
    /// when the rule is undefined for this input; 400 for a bad input, 500 for an evaluation error, both with
    /// an error object <c>{"code","message","errors":[...]}</c>.
    /// </summary>
    [Post("/v1/data/{**path}")]
    Task<IApiResponse<OpaDataResponse>> EvaluateAsync(string path, [Body(buffered: true)] OpaDataRequest request, CancellationToken cancellationToken);

    /// <summary><c>GET /health</c>: 200 <c>{}</c> when OPA can serve, 500 <c>{"error": ...}</c> otherwise.</summary>
    [Get("/health")]
    Task<IApiResponse> HealthAsync(CancellationToken cancellationToken);
}

internal sealed record OpaDataRequest(JsonNode? Input);

internal sealed record OpaDataResponse
{
    /// <summary>Absent when the rule is undefined.</summary>
    public JsonElement? Result { get; init; }

    /// <summary>Present when OPA's decision logging is on; we reuse it as our decision id for correlation.</summary>
    public string? DecisionId { get; init; }
}

/// <summary>OPA's error object; <c>errors</c> and their <c>location</c> are optional.</summary>
internal sealed record OpaError
{
    public string? Code { get; init; }

    public string? Message { get; init; }

    public IReadOnlyList<OpaErrorDetail>? Errors { get; init; }
}

internal sealed record OpaErrorDetail
{
    public string? Code { get; init; }

    public string? Message { get; init; }
}

/// <summary>What policies/gateway.rego's <c>decision</c> rule returns.</summary>
internal sealed record OpaDecisionResult
{
    public bool? Allow { get; init; }

    public IReadOnlyList<string>? Reasons { get; init; }

    public int? MaxOutputTokens { get; init; }
}

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(OpaDataRequest))]
[JsonSerializable(typeof(OpaDataResponse))]
[JsonSerializable(typeof(OpaError))]
[JsonSerializable(typeof(OpaDecisionResult))]
internal sealed partial class OpaJsonContext : JsonSerializerContext;
