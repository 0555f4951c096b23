using System.ComponentModel.DataAnnotations;

namespace ModelGateway.Api.StructuredOutput;

/// <summary>
/// Section <c>StructuredOutput</c>: gateway-wide defaults for requests that ask for JSON. A route's
/// <c>Gateway:Routes:&lt;alias&gt;:StructuredOutput</c> overrides them, and a request's <c>repair</c>/<c>coerce</c> fields override both.
/// </summary>
public sealed class StructuredOutputOptions
{
    public const string SectionName = "StructuredOutput";

    /// <summary>
    /// One repair attempt (the validation errors go back to the model) when a non-streaming output fails its schema.
    /// Default false: a repair is a second paid call, so it is opted into.
    /// </summary>
    public bool Repair { get; set; }

    /// <summary>Coerce scalars the way Ajv's <c>coerceTypes</c> does before validating. Default false: the schema is taken literally.</summary>
    public bool Coerce { get; set; }

    /// <summary>How many distinct compiled schemas are kept (least recently used goes first). Default 512.</summary>
    [Range(1, 1_000_000)]
    public int SchemaCacheCapacity { get; set; } = SchemaCache.DefaultCapacity;
}
