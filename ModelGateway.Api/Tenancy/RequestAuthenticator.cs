using Microsoft.Extensions.Options;

namespace ModelGateway.Api.Tenancy;

internal enum AuthResult
{
    Unauthenticated,
    Tenant,
    Admin,

    /// <summary>Too many requests without a known key from this client IP (<see cref="FloodGuard"/>).</summary>
    Flooded,
}

/// <summary>
/// Who a request is: the admin (its key compared in constant time), a tenant through one of its keys, or nobody.
/// Lookups that would reach Postgres (unknown or uncached keys, no key at all) first take a per-IP flood permit.
/// </summary>
internal sealed class RequestAuthenticator(TenantStore tenants, FloodGuard flood, IOptions<TenancyOptions> options)
{
    public async ValueTask<(AuthResult Result, Caller? Caller)> AuthenticateAsync(HttpContext context, bool allowAdmin)
    {
        var key = ApiKeys.BearerToken(context);
        if (key is not null && key.Length <= 256)
        {
            if (allowAdmin && ApiKeys.FixedTimeEquals(key, options.Value.AdminKey))
            {
                return (AuthResult.Admin, null);
            }
            if (tenants.TryGetCached(key, out var cached))
            {
                context.Items[typeof(Caller)] = cached;
                return (AuthResult.Tenant, cached);
            }
        }
        if (!flood.TryAcquire(context))
        {
            return (AuthResult.Flooded, null);
        }
        if (key is null || key.Length > 256)
        {
            return (AuthResult.Unauthenticated, null);
        }
        var caller = await tenants.AuthenticateAsync(key, context.RequestAborted);
        if (caller is null)
        {
            return (AuthResult.Unauthenticated, null);
        }
        context.Items[typeof(Caller)] = caller;
        return (AuthResult.Tenant, caller);
    }
}
