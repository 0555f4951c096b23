using System.Text.Json.Serialization;

namespace ModelGateway.Policy.Rules;

/// <summary>
/// Source-generated JSON for the decision contract (no reflection on the request path). snake_case, nulls
/// omitted: that is the wire shape of the Policy service and of the OPA input.
/// </summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    UseStringEnumConverter = true)]
[JsonSerializable(typeof(PolicyInput))]
[JsonSerializable(typeof(PolicyDecision))]
[JsonSerializable(typeof(TenantPolicy))]
[JsonSerializable(typeof(PolicyDecisionRequest))]
public sealed partial class PolicyJsonContext : JsonSerializerContext;
