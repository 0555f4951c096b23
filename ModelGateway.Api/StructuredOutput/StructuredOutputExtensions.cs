using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace ModelGateway.Api.StructuredOutput;

internal static class StructuredOutputExtensions
{
    /// <summary>
    /// Registers the <see cref="StructuredOutputOptions"/> (validated at start-up), the compiled-schema cache (one per process:
    /// each schema is compiled once, whoever sends it) and the <see cref="StructuredOutputGuard"/> the request path calls.
    /// </summary>
    public static IHostApplicationBuilder AddStructuredOutput(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<StructuredOutputOptions>().Bind(builder.Configuration.GetSection(StructuredOutputOptions.SectionName))
            .ValidateDataAnnotations().ValidateOnStart();
        builder.Services.TryAddSingleton(sp => new SchemaCache(sp.GetRequiredService<IOptions<StructuredOutputOptions>>().Value.SchemaCacheCapacity));
        builder.Services.TryAddSingleton<StructuredOutputGuard>();
        return builder;
    }
}
