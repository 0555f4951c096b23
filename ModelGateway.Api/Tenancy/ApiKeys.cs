using System.Security.Cryptography;
using System.Text;

namespace ModelGateway.Api.Tenancy;

/// <summary>API keys: random, shown once, stored only as SHA-256 hashes.</summary>
internal static class ApiKeys
{
    public const string Prefix = "sk-mg-";

    /// <summary>A new key with 256 bits of randomness.</summary>
    public static string Generate() =>
        Prefix + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    /// <summary>
    /// SHA-256 of the key. A fast hash is right here: keys carry 256 random bits, so there is nothing to brute-force,
    /// and the hash is the lookup key (equality on a fixed-size digest, so lookups leak nothing about the key).
    /// </summary>
    public static byte[] Hash(string key) => SHA256.HashData(Encoding.UTF8.GetBytes(key));

    /// <summary>A key's visible part for listings: enough to recognise it, not to use it.</summary>
    public static string DisplayPrefix(string key) => key.Length <= 10 ? "****" : key[..10] + "…";

    /// <summary>Constant-time comparison of two secrets.</summary>
    public static bool FixedTimeEquals(string a, string b) =>
        CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(a)), SHA256.HashData(Encoding.UTF8.GetBytes(b)));

    /// <summary>The bearer token of an <c>Authorization</c> header, or null.</summary>
    public static string? BearerToken(HttpContext context)
    {
        var header = context.Request.Headers.Authorization.ToString();
        if (header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            var token = header.AsSpan(7).Trim();
            return token.Length == 0 ? null : token.ToString();
        }
        return null;
    }
}
