using Yarp.ReverseProxy.Forwarder;

namespace ModelGateway.Api.FrontDoor;

/// <summary>
/// One front door for clients: the Api forwards the Realtime signalling endpoints and the original gateway's
/// <c>POST /api/opa/decide</c> to the services that own them, so a client needs a single base URL. YARP's direct
/// forwarder does the proxying (streaming, hop-by-hop header handling); each service authenticates the forwarded
/// request itself (tenant key for Realtime, admin key for the OPA passthrough).
/// </summary>
internal static class FrontDoorApi
{
    public static IServiceCollection AddFrontDoor(this IServiceCollection services) => services.AddHttpForwarder();

    public static IEndpointRouteBuilder MapFrontDoorApi(this IEndpointRouteBuilder app, IConfiguration configuration)
    {
        // Aspire's service discovery publishes each reference as services:<name>:<endpoint>:0; plain settings override it.
        var realtime = configuration["FrontDoor:RealtimeUrl"] ?? configuration["services:realtime:http:0"] ?? configuration["Realtime:BaseUrl"];
        var policy = configuration["FrontDoor:PolicyUrl"] ?? configuration["services:policy:http:0"];
        var config = ForwarderRequestConfig.Empty with { ActivityTimeout = TimeSpan.FromMinutes(2) };

        MapOrUnavailable(app, "/realtime/offer", realtime, config, "realtime");
        MapOrUnavailable(app, "/realtime/ice-servers", realtime, config, "realtime");
        MapOrUnavailable(app, "/api/opa/decide", policy, config, "policy");
        return app;
    }

    private static void MapOrUnavailable(IEndpointRouteBuilder app, string path, string? destination, ForwarderRequestConfig config, string service)
    {
        if (string.IsNullOrWhiteSpace(destination))
        {
            app.Map(path, () => TypedResults.Problem(
                $"The {service} service is not configured for this gateway (set FrontDoor:{char.ToUpperInvariant(service[0])}{service[1..]}Url).",
                statusCode: StatusCodes.Status503ServiceUnavailable));
            return;
        }
        app.MapForwarder(path, destination.TrimEnd('/'), config);
    }
}
