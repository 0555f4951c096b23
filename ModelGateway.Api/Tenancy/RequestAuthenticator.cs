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
/// Lookups that would reach Postgres (unknown or uncached keys, no key at all) first take a per-IP flood permit; requests
/// that join a lookup of the same key already in flight do not.
/// </summary>
internal sealed class RequestAuthenticator(TenantStore tenants, FloodGuard flood, IOptions<TenancyOptions> options)
{
    public async ValueTask<(AuthResult Result, Caller? Caller)> AuthenticateAsync(HttpContext context, bool allowAdmin)
    {
        var key = ApiKeys.BearerToken(context);
        if (key is null || key.Length > 256)
        {
            return (flood.TryAcquire(context) ? AuthResult.Unauthenticated : AuthResult.Flooded, null);
        }
        if (allowAdmin && ApiKeys.FixedTimeEquals(key, options.Value.AdminKey))
        {
            return (AuthResult.Admin, null);
        }
        if (tenants.TryGetCached(key, out var cached))
        {
            context.Items[typeof(Caller)] = cached;
            return (AuthResult.Tenant, cached);
        }
        // A permit only for a request that would query Postgres itself, not one joining a lookup of the same key in flight.
        var (caller, flooded) = await tenants.AuthenticateAsync(key, () => flood.TryAcquire(context), context.RequestAborted);
        if (flooded)
        {
            return (AuthResult.Flooded, null);
        }
        if (caller is null)
        {
            return (AuthResult.Unauthenticated, null);
        }
        context.Items[typeof(Caller)] = caller;
        return (AuthResult.Tenant, caller);
    }
}
