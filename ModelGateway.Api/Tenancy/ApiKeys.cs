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
    public static byte[] Hash(string key) => HashOf(key).ToArray();

    /// <summary>The key's SHA-256 as a value: what the key cache looks up, with no string or array per request.</summary>
    public static KeyHash HashOf(string key)
    {
        Span<byte> digest = stackalloc byte[KeyHash.Size];
        Sha256(key, digest);
        return KeyHash.Read(digest);
    }

    /// <summary>
    /// One SHA-256 hasher per thread, reset after each use: <see cref="SHA256.HashData(byte[])"/> creates and frees
    /// OpenSSL's digest context on every call (two native allocations per request on the key's path).
    /// </summary>
    [ThreadStatic]
    private static IncrementalHash? t_sha256;

    private static void Sha256(string value, Span<byte> digest)
    {
        var hasher = t_sha256 ??= IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var length = Encoding.UTF8.GetMaxByteCount(value.Length);
        var rented = length <= 1024 ? null : System.Buffers.ArrayPool<byte>.Shared.Rent(length);
        Span<byte> utf8 = rented ?? stackalloc byte[1024];
        try
        {
            hasher.AppendData(utf8[..Encoding.UTF8.GetBytes(value, utf8)]);
            hasher.GetHashAndReset(digest);
        }
        catch
        {
            // A hasher left mid-digest would spoil this thread's next hash: start the next one afresh.
            t_sha256 = null;
            hasher.Dispose();
            throw;
        }
        finally
        {
            if (rented is not null)
            {
                System.Buffers.ArrayPool<byte>.Shared.Return(rented, clearArray: true); // it held a secret
            }
        }
    }

    /// <summary>A key's visible part for listings: enough to recognise it, not to use it.</summary>
    public static string DisplayPrefix(string key) => key.Length <= 10 ? "****" : key[..10] + "…";

    /// <summary>Constant-time comparison of two secrets.</summary>
    public static bool FixedTimeEquals(string a, string b)
    {
        Span<byte> digests = stackalloc byte[2 * KeyHash.Size];
        Sha256(a, digests[..KeyHash.Size]);
        Sha256(b, digests[KeyHash.Size..]);
        return CryptographicOperations.FixedTimeEquals(digests[..KeyHash.Size], digests[KeyHash.Size..]);
    }

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

/// <summary>A key's SHA-256 digest as a value (the key cache's key).</summary>
internal readonly record struct KeyHash(UInt128 First, UInt128 Second)
{
    public const int Size = 32;

    public static KeyHash Read(ReadOnlySpan<byte> digest) =>
        new(System.Buffers.Binary.BinaryPrimitives.ReadUInt128LittleEndian(digest),
            System.Buffers.Binary.BinaryPrimitives.ReadUInt128LittleEndian(digest[16..]));

    /// <summary>The digest's bytes, as stored in Postgres.</summary>
    public byte[] ToArray()
    {
        var bytes = new byte[Size];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt128LittleEndian(bytes, First);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt128LittleEndian(bytes.AsSpan(16), Second);
        return bytes;
    }
}
