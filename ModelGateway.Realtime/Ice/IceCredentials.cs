using System.Security.Cryptography;

namespace ModelGateway.Realtime.Ice;

/// <summary>Our ICE username fragment and password for one session (RFC 8839 §5.4).</summary>
internal sealed record IceCredentials(string Ufrag, string Password)
{
    // RFC 8839 §5.4: ice-char = ALPHA / DIGIT / "+" / "/"; ufrag 4..256 chars, pwd 22..256 chars.
    private const string IceChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    /// <summary>24 bits of randomness for the ufrag and 128+ for the password, as RFC 8445 §5.3 asks.</summary>
    public static IceCredentials Generate() =>
        new(RandomNumberGenerator.GetString(IceChars, 8), RandomNumberGenerator.GetString(IceChars, 24));
}
