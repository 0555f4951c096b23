using System.Globalization;
using ModelGateway.Api.Admin;
using ModelGateway.Api.Tenancy;

namespace ModelGateway.Api.Tracing;

/// <summary>
/// <c>GET /api/traces</c>: the original gateway's list (a JSON array of <c>id</c>, <c>ts</c>, <c>model</c>, newest first),
/// with more fields per item, filters (<c>tenant</c>, <c>model</c> = alias or upstream model, <c>status</c> = outcome or HTTP
/// status, <c>since</c>/<c>until</c> ISO 8601) and keyset paging: <c>limit</c> (default 50, at most 500) and an opaque
/// <c>cursor</c>, the next one returned in the <c>x-next-cursor</c> header (absent on the last page; the body stays an array
/// so the original's clients keep working). <c>GET /api/traces/{id}</c>: the full record, by request id or W3C trace id.
/// The admin key sees every tenant's traces; a tenant key only its own (another tenant's trace answers 404).
/// </summary>
internal static class TracesApi
{
    public const string NextCursorHeader = "x-next-cursor";

    public static IEndpointRouteBuilder MapTracesApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/api/traces", ListAsync);
        app.MapGet("/api/traces/{id}", GetAsync);
        return app;
    }

    private static async Task<IResult> ListAsync(HttpContext context, RequestAuthenticator auth, TraceQueries traces,
        string? tenant, string? model, string? status, string? since, string? until, string? cursor, int? limit, CancellationToken ct)
    {
        var (refused, only) = await AuthorizeAsync(context, auth);
        if (refused is not null)
        {
            return refused;
        }
        if (!TryParseTime(since, out var from) || !TryParseTime(until, out var to))
        {
            return TypedResults.Problem("'since' and 'until' must be ISO 8601 timestamps, e.g. 2030-01-15T12:00:00Z.", statusCode: 400);
        }
        TraceCursor? after = null;
        if (cursor is not null)
        {
            if (!TraceCursor.TryDecode(cursor, out var decoded))
            {
                return TypedResults.Problem("'cursor' is not a cursor this API returned.", statusCode: 400);
            }
            after = decoded;
        }
        var filter = new TraceFilter(only, Empty(tenant), Empty(model), Empty(status), from, to, after, Math.Clamp(limit ?? 50, 1, 500));
        var (page, next) = await traces.ListAsync(filter, ct);
        if (next is { } n)
        {
            context.Response.Headers[NextCursorHeader] = n.Encode();
        }
        return ReadApi.Json(page);
    }

    private static async Task<IResult> GetAsync(string id, HttpContext context, RequestAuthenticator auth, TraceQueries traces, CancellationToken ct)
    {
        var (refused, only) = await AuthorizeAsync(context, auth);
        if (refused is not null)
        {
            return refused;
        }
        var found = await traces.GetAsync(id, only, ct);
        return found is null ? TypedResults.Problem($"Trace '{id}' does not exist.", statusCode: 404) : ReadApi.Json(found);
    }

    /// <summary>The refusal to return, or the tenant the caller is confined to (null: the admin key, every tenant).</summary>
    private static async Task<(IResult? Refused, string? OnlyTenant)> AuthorizeAsync(HttpContext context, RequestAuthenticator auth)
    {
        var (result, caller) = await auth.AuthenticateAsync(context, allowAdmin: true);
        return result switch
        {
            AuthResult.Admin => (null, null),
            AuthResult.Tenant => (null, caller!.Tenant.Id),
            AuthResult.Flooded => (ReadApi.Flooded(context), null),
            _ => (TypedResults.Problem("Missing or invalid API key. Pass it as 'Authorization: Bearer <key>'.", statusCode: 401), null),
        };
    }

    private static string? Empty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value;

    private static bool TryParseTime(string? text, out DateTimeOffset? value)
    {
        value = null;
        if (string.IsNullOrWhiteSpace(text))
        {
            return true;
        }
        if (DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var parsed))
        {
            value = parsed;
            return true;
        }
        return false;
    }
}
