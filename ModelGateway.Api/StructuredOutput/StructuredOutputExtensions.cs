using Microsoft.Extensions.DependencyInjection.Extensions;

namespace ModelGateway.Api.StructuredOutput;

internal static class StructuredOutputExtensions
{
    /// <summary>Registers the compiled-schema cache (one per process: schemas are compiled once, whoever sends them).</summary>
    public static IHostApplicationBuilder AddStructuredOutput(this IHostApplicationBuilder builder)
    {
        builder.Services.TryAddSingleton(_ => new SchemaCache());
        return builder;
    }
}
