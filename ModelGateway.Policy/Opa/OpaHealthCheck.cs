using System.Globalization;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace ModelGateway.Policy.Opa;

/// <summary>
/// Reflects OPA's <c>GET /health</c> in the service's own health page. An unhealthy OPA makes the service
/// Degraded, not Unhealthy: it still answers, deciding built-in tenants and failing OPA tenants closed.
/// </summary>
internal sealed class OpaHealthCheck(IOpaClient client, IOptions<OpaOptions> options) : IHealthCheck
{
    public const string Name = "opa";
    public const string NotConfigured = "not configured";

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var o = options.Value;
        if (!o.IsConfigured)
        {
            return HealthCheckResult.Healthy(NotConfigured);
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(o.HealthTimeout);
        try
        {
            using var response = await client.HealthAsync(timeout.Token).ConfigureAwait(false);
            if (response.IsSuccessStatusCode)
            {
                return HealthCheckResult.Healthy("healthy");
            }

            var status = response.HasRequestError(out var requestError)
                ? $"unreachable: {requestError.InnerException?.Message ?? requestError.Message}"
                : string.Create(CultureInfo.InvariantCulture, $"unhealthy: GET /health answered {(int?)response.StatusCode}");
            return new HealthCheckResult(HealthStatus.Degraded, status);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return new HealthCheckResult(HealthStatus.Degraded, "unreachable: GET /health timed out");
        }
        catch (HttpRequestException e)
        {
            return new HealthCheckResult(HealthStatus.Degraded, $"unreachable: {e.Message}");
        }
    }
}
