using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;
using ModelGateway.Policy.Decisions;
using ModelGateway.Policy.Rules.Client;

namespace ModelGateway.Policy.Security;

/// <summary>
/// Checks the admin key (<c>Authorization: Bearer</c>) and the service key (<c>x-policy-key</c>). Both sides
/// are hashed before <see cref="CryptographicOperations.FixedTimeEquals"/>, so the comparison takes the same
/// time whatever the presented key's length or content.
/// </summary>
internal sealed class KeyAuthorizer(IOptions<PolicyServiceOptions> options)
{
    private readonly byte[] _adminKeyHash = Hash(options.Value.AdminKey!);
    private readonly byte[] _serviceKeyHash = Hash(options.Value.ServiceKey!);

    public bool IsAdmin(HttpRequest request)
    {
        var header = request.Headers[HeaderNames.Authorization].ToString();
        const string Scheme = "Bearer ";
        return header.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase)
            && Matches(header.AsSpan(Scheme.Length).Trim(), _adminKeyHash);
    }

    public bool IsService(HttpRequest request)
        => request.Headers.TryGetValue(PolicyServiceAuth.ServiceKeyHeader, out var value)
           && Matches(value.ToString(), _serviceKeyHash);

    private static bool Matches(ReadOnlySpan<char> presented, byte[] expectedHash)
    {
        if (presented.IsEmpty)
        {
            return false;
        }

        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        var bytes = Encoding.UTF8.GetBytes(presented.ToArray());
        SHA256.HashData(bytes, hash);
        return CryptographicOperations.FixedTimeEquals(hash, expectedHash);
    }

    private static byte[] Hash(string key) => SHA256.HashData(Encoding.UTF8.GetBytes(key));
}
