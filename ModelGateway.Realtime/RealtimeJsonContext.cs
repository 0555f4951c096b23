using System.Text.Json.Serialization;
using ModelGateway.Realtime.Signalling;

namespace ModelGateway.Realtime;

/// <summary>Source-generated JSON for the shapes Realtime reads and writes (no per-request reflection).</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(string))]
[JsonSerializable(typeof(SessionDescriptionMessage))]
[JsonSerializable(typeof(IceServersResponse))]
internal sealed partial class RealtimeJsonContext : JsonSerializerContext;
