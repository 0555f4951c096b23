using System.Text.Json;
using System.Text.Json.Nodes;
using ModelGateway.Api.Budgets;
using ModelGateway.Api.Ledger;
using ModelGateway.Api.Tenancy;

namespace ModelGateway.Api.Admin;

/// <summary>
/// <c>/api/admin</c>: tenants, keys, limits, budgets and spend resets, for the admin key only (compared in constant
/// time; a tenant key gets 403, no key 401). Errors are ProblemDetails (RFC 9457): these are not OpenAI endpoints.
/// </summary>
internal static class AdminApi
{
    public static IEndpointRouteBuilder MapAdminApi(this IEndpointRouteBuilder app)
    {
        var admin = app.MapGroup("/api/admin").AddEndpointFilter(RequireAdminAsync);
        admin.MapGet("/tenants", ListTenantsAsync);
        admin.MapPost("/tenants", CreateTenantAsync);
        admin.MapGet("/tenants/{id}", GetTenantAsync);
        admin.MapPatch("/tenants/{id}", UpdateTenantAsync);
        admin.MapDelete("/tenants/{id}", DeleteTenantAsync);
        admin.MapGet("/tenants/{id}/keys", ListKeysAsync);
        admin.MapPost("/tenants/{id}/keys", IssueKeyAsync);
        admin.MapDelete("/tenants/{id}/keys/{keyId}", RevokeKeyAsync);
        admin.MapPost("/tenants/{id}/spend/reset", ResetSpendAsync);
        return app;
    }

    private static async ValueTask<object?> RequireAdminAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var auth = context.HttpContext.RequestServices.GetRequiredService<RequestAuthenticator>();
        var (result, _) = await auth.AuthenticateAsync(context.HttpContext, allowAdmin: true);
        return result switch
        {
            AuthResult.Admin => await next(context),
            AuthResult.Tenant => TypedResults.Problem("This endpoint requires the admin key.", statusCode: 403),
            AuthResult.Flooded => ReadApi.Flooded(context.HttpContext),
            _ => TypedResults.Problem("Missing or invalid admin key. Pass it as 'Authorization: Bearer <key>'.", statusCode: 401),
        };
    }

    private static async Task<IResult> ListTenantsAsync(LedgerQueries ledger, CancellationToken ct) =>
        ReadApi.Json(await ledger.TenantSummariesAsync(null, ct));

    private static async Task<IResult> GetTenantAsync(string id, LedgerQueries ledger, TenantAdminStore store, CancellationToken ct)
    {
        var found = await ledger.TenantSummariesAsync(id, ct);
        if (found.Count == 0)
        {
            return NotFound(id);
        }
        var tenant = found[0]!.AsObject();
        tenant["keys"] = await store.ListKeysAsync(id, ct);
        return ReadApi.Json(tenant);
    }

    private static async Task<IResult> CreateTenantAsync(HttpContext context, TenantAdminStore store, LedgerQueries ledger, CancellationToken ct)
    {
        var body = await ReadObjectAsync(context);
        if (body is null)
        {
            return BadRequest("The body must be a JSON object.");
        }
        if (body["id"] is not JsonValue idValue || idValue.GetValueKind() != JsonValueKind.String
            || !TenantAdminStore.TenantIdPattern().IsMatch(idValue.GetValue<string>()))
        {
            return BadRequest("'id' is required: 1-64 characters of letters, digits, '.', '_' or '-', starting with a letter or digit.");
        }
        var id = idValue.GetValue<string>();
        try
        {
            if (!await store.CreateAsync(id, body, ct))
            {
                return TypedResults.Problem($"Tenant '{id}' already exists.", statusCode: 409);
            }
        }
        catch (ArgumentException ex)
        {
            return BadRequest(ex.Message);
        }
        var created = await ledger.TenantSummariesAsync(id, ct);
        return new JsonResult(created[0]!, StatusCodes.Status201Created);
    }

    private static async Task<IResult> UpdateTenantAsync(string id, HttpContext context, TenantAdminStore store, LedgerQueries ledger, CancellationToken ct)
    {
        var body = await ReadObjectAsync(context);
        if (body is null)
        {
            return BadRequest("The body must be a JSON object.");
        }
        try
        {
            if (!await store.UpdateAsync(id, body, ct))
            {
                return NotFound(id);
            }
        }
        catch (ArgumentException ex)
        {
            return BadRequest(ex.Message);
        }
        return ReadApi.Json((await ledger.TenantSummariesAsync(id, ct))[0]!);
    }

    private static async Task<IResult> DeleteTenantAsync(string id, TenantAdminStore store, AdmissionService admission, CancellationToken ct)
    {
        if (!await store.DeleteAsync(id, ct))
        {
            return NotFound(id);
        }
        await admission.ForgetSpendAsync(id);
        return TypedResults.NoContent();
    }

    private static async Task<IResult> ListKeysAsync(string id, TenantAdminStore store, CancellationToken ct) =>
        await store.ExistsAsync(id, ct) ? ReadApi.Json(await store.ListKeysAsync(id, ct)) : NotFound(id);

    /// <summary>Body (optional): <c>{"expires_at": "2026-01-01T00:00:00Z"}</c>. The key is in this response only.</summary>
    private static async Task<IResult> IssueKeyAsync(string id, HttpContext context, TenantAdminStore store, TimeProvider time, CancellationToken ct)
    {
        DateTimeOffset? expiresAt = null;
        if (context.Request.ContentLength is > 0 || context.Request.Headers.TransferEncoding.Count > 0)
        {
            var body = await ReadObjectAsync(context);
            if (body is null)
            {
                return BadRequest("The body must be a JSON object.");
            }
            if (body["expires_at"] is JsonValue e)
            {
                if (e.GetValueKind() != JsonValueKind.String || !DateTimeOffset.TryParse(e.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture,
                        System.Globalization.DateTimeStyles.AssumeUniversal, out var parsed))
                {
                    return BadRequest("'expires_at' must be an ISO 8601 date and time.");
                }
                if (parsed <= time.GetUtcNow())
                {
                    return BadRequest("'expires_at' must be in the future.");
                }
                expiresAt = parsed;
            }
        }
        var issued = await store.IssueKeyAsync(id, expiresAt, ct);
        if (issued is not { } k)
        {
            return NotFound(id);
        }
        return new JsonResult(new JsonObject
        {
            ["id"] = k.Id,
            ["tenant_id"] = id,
            ["key"] = k.Key,
            ["prefix"] = k.Prefix,
            ["expires_at"] = expiresAt,
            ["note"] = "Store this key now: it is not shown again.",
        }, StatusCodes.Status201Created);
    }

    private static async Task<IResult> RevokeKeyAsync(string id, string keyId, TenantAdminStore store, CancellationToken ct) =>
        await store.RevokeKeyAsync(id, keyId, ct) ? TypedResults.NoContent()
            : TypedResults.Problem($"Tenant '{id}' has no key '{keyId}'.", statusCode: 404);

    /// <summary>Starts the tenant's spend from zero now: the ledger keeps every row, the budget counts only later ones.</summary>
    private static async Task<IResult> ResetSpendAsync(string id, TenantAdminStore store, AdmissionService admission, CancellationToken ct)
    {
        if (!await store.MarkSpendResetAsync(id, ct))
        {
            return NotFound(id);
        }
        await admission.ForgetSpendAsync(id);
        return TypedResults.NoContent();
    }

    private static async Task<JsonObject?> ReadObjectAsync(HttpContext context)
    {
        try
        {
            return await JsonNode.ParseAsync(context.Request.Body, cancellationToken: context.RequestAborted) as JsonObject;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static IResult BadRequest(string message) => TypedResults.Problem(message, statusCode: 400);

    private static IResult NotFound(string id) => TypedResults.Problem($"Tenant '{id}' does not exist.", statusCode: 404);
}
