using System.Text.Json;
using System.Text.Json.Nodes;
using ModelGateway.Api.Ledger;
using ModelGateway.Api.Tenancy;

namespace ModelGateway.Api.Admin;

/// <summary>
/// The original gateway's read endpoints, now authenticated: <c>GET /api/tenants</c>, <c>GET /api/tenants/{id}</c>
/// (recent requests, newest first, paged with <c>limit</c> and <c>offset</c>) and <c>GET /api/stats</c>. The admin key sees
/// every tenant; a tenant key sees only its own (another tenant's id answers 404, so ids cannot be probed).
/// </summary>
internal static class ReadApi
{
    public static IEndpointRouteBuilder MapTenantReadApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/api/tenants", ListAsync);
        app.MapGet("/api/tenants/{id}", GetAsync);
        app.MapGet("/api/stats", StatsAsync);
        return app;
    }

    private static Task<IResult> ListAsync(HttpContext context, RequestAuthenticator auth, LedgerQueries ledger, CancellationToken ct) =>
        ScopedAsync(context, auth, only => ledger.TenantSummariesAsync(only, ct));

    /// <summary>Runs a query over all tenants for the admin key, over the caller's own tenant for a tenant key.</summary>
    private static async Task<IResult> ScopedAsync<T>(HttpContext context, RequestAuthenticator auth, Func<string?, Task<T>> query) where T : JsonNode
    {
        var (result, caller) = await auth.AuthenticateAsync(context, allowAdmin: true);
        return result switch
        {
            AuthResult.Admin => Json(await query(null)),
            AuthResult.Tenant => Json(await query(caller!.Tenant.Id)),
            AuthResult.Flooded => Flooded(context),
            _ => Unauthorized(),
        };
    }

    private static async Task<IResult> GetAsync(string id, HttpContext context, RequestAuthenticator auth, LedgerQueries ledger,
        int? limit, int? offset, CancellationToken ct)
    {
        var (result, caller) = await auth.AuthenticateAsync(context, allowAdmin: true);
        switch (result)
        {
            case AuthResult.Flooded:
                return Flooded(context);
            case AuthResult.Unauthenticated:
                return Unauthorized();
            case AuthResult.Tenant when caller!.Tenant.Id != id:
                return TypedResults.Problem($"Tenant '{id}' does not exist.", statusCode: 404);
        }
        var found = await ledger.TenantSummariesAsync(id, ct);
        if (found.Count == 0)
        {
            return TypedResults.Problem($"Tenant '{id}' does not exist.", statusCode: 404);
        }
        var (take, skip) = (Math.Clamp(limit ?? 50, 1, 500), Math.Max(0, offset ?? 0));
        var tenant = found[0]!.AsObject();
        tenant["requests_page"] = new JsonObject { ["limit"] = take, ["offset"] = skip };
        tenant["recent_requests"] = await ledger.RecentRequestsAsync(id, take, skip, ct);
        return Json(tenant);
    }

    private static Task<IResult> StatsAsync(HttpContext context, RequestAuthenticator auth, LedgerQueries ledger, CancellationToken ct) =>
        ScopedAsync(context, auth, only => ledger.StatsAsync(only, ct));

    private static IResult Unauthorized() =>
        TypedResults.Problem("Missing or invalid API key. Pass it as 'Authorization: Bearer <key>'.", statusCode: 401);

    internal static IResult Flooded(HttpContext context)
    {
        context.Response.Headers.RetryAfter = "60";
        return TypedResults.Problem("Too many requests without a valid key from your address; retry later.", statusCode: 429);
    }

    internal static IResult Json(JsonNode node) => new JsonResult(node, StatusCodes.Status200OK);
}

/// <summary>Writes a <see cref="JsonNode"/> directly (no reflection-based serialization on these endpoints).</summary>
internal sealed class JsonResult(JsonNode node, int statusCode) : IResult, IStatusCodeHttpResult
{
    public int? StatusCode => statusCode;

    public async Task ExecuteAsync(HttpContext httpContext)
    {
        httpContext.Response.StatusCode = statusCode;
        httpContext.Response.ContentType = "application/json; charset=utf-8";
        await using var writer = new Utf8JsonWriter(httpContext.Response.BodyWriter);
        node.WriteTo(writer);
        await writer.FlushAsync(httpContext.RequestAborted);
    }
}
