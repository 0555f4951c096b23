using System.Text.Json;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using ModelGateway.Policy.Opa;
using ModelGateway.Policy.Rules;

namespace ModelGateway.Policy.Health;

/// <summary>
/// <c>/health</c> says which engine decides OPA tenants and how OPA is, e.g.
/// <c>{"status":"Healthy","engine":"built-in","opa":"not configured"}</c>. <c>/alive</c> stays the
/// service defaults' liveness probe.
/// </summary>
internal static class PolicyHealthEndpoints
{
    public static IEndpointRouteBuilder MapPolicyHealth(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapHealthChecks(ServiceDefaultsExtensions.HealthEndpointPath, new HealthCheckOptions
        {
            ResponseWriter = WriteAsync,
            ResultStatusCodes =
            {
                [HealthStatus.Healthy] = StatusCodes.Status200OK,
                [HealthStatus.Degraded] = StatusCodes.Status200OK,
                [HealthStatus.Unhealthy] = StatusCodes.Status503ServiceUnavailable,
            },
        });
        return endpoints;
    }

    private static async Task WriteAsync(HttpContext context, HealthReport report)
    {
        var opa = context.RequestServices.GetRequiredService<IOptions<OpaOptions>>().Value;
        var opaStatus = report.Entries.TryGetValue(OpaHealthCheck.Name, out var entry) ? entry.Description : OpaHealthCheck.NotConfigured;

        context.Response.ContentType = "application/json; charset=utf-8";
        await using var writer = new Utf8JsonWriter(context.Response.BodyWriter);
        writer.WriteStartObject();
        writer.WriteString("status", report.Status.ToString());
        writer.WriteString("engine", opa.IsConfigured ? PolicyEngineNames.Opa : PolicyEngineNames.BuiltIn);
        writer.WriteString("opa", opaStatus ?? OpaHealthCheck.NotConfigured);
        writer.WriteEndObject();
        await writer.FlushAsync(context.RequestAborted);
    }
}
