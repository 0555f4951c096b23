using System.Security.Cryptography;
using System.Text.Json;

namespace ModelGateway.Policy.Rules.Decisions;

/// <summary>
/// SHA-256 of the canonical input, for logs: it lets two log lines be matched to the same input without
/// the input (which may hold prompt text) ever being written. Canonical = the contract's source-generated
/// serialisation: fixed property order, nulls omitted, no whitespace.
/// </summary>
public static class PolicyDigest
{
    public static string Of(PolicyInput input)
        => Hex(JsonSerializer.SerializeToUtf8Bytes(input, PolicyJsonContext.Default.PolicyInput));

    public static string Of(ReadOnlySpan<byte> canonicalJson) => Hex(canonicalJson);

    private static string Hex(ReadOnlySpan<byte> bytes)
    {
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(bytes, hash);
        return Convert.ToHexStringLower(hash);
    }
}
