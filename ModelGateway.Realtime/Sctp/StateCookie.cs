using System.Buffers.Binary;
using System.Security.Cryptography;

namespace ModelGateway.Realtime.Sctp;

/// <summary>What an INIT ACK's cookie remembers so that no state is kept before COOKIE ECHO (RFC 4960 §5.1.3).</summary>
internal sealed record CookieState(uint PeerTag, uint LocalTag, uint PeerInitialTsn, uint LocalInitialTsn, uint PeerReceiverWindow, ushort OutboundStreams, ushort InboundStreams);

/// <summary>
/// Signs and checks state cookies: the fields, a creation time, and an HMAC-SHA256 over both with a
/// per-process secret (RFC 4960 §5.1.3 asks for a MAC and a lifetime; §5.1.5 for the checks on return).
/// </summary>
internal sealed class StateCookieSigner(TimeProvider time, TimeSpan lifetime)
{
    private const int FieldsLength = 32;
    private const int MacLength = 32;
    public const int CookieLength = FieldsLength + MacLength;

    private readonly byte[] _key = RandomNumberGenerator.GetBytes(32);

    public byte[] Create(CookieState s)
    {
        var cookie = new byte[CookieLength];
        var f = cookie.AsSpan();
        BinaryPrimitives.WriteUInt32BigEndian(f, s.PeerTag);
        BinaryPrimitives.WriteUInt32BigEndian(f[4..], s.LocalTag);
        BinaryPrimitives.WriteUInt32BigEndian(f[8..], s.PeerInitialTsn);
        BinaryPrimitives.WriteUInt32BigEndian(f[12..], s.LocalInitialTsn);
        BinaryPrimitives.WriteUInt32BigEndian(f[16..], s.PeerReceiverWindow);
        BinaryPrimitives.WriteUInt16BigEndian(f[20..], s.OutboundStreams);
        BinaryPrimitives.WriteUInt16BigEndian(f[22..], s.InboundStreams);
        BinaryPrimitives.WriteInt64BigEndian(f[24..], time.GetUtcNow().ToUnixTimeMilliseconds());
        HMACSHA256.HashData(_key, f[..FieldsLength], f[FieldsLength..]);
        return cookie;
    }

    /// <summary>Null when the MAC does not match or the cookie is older than its lifetime (§5.1.5 steps 2–3).</summary>
    public CookieState? Verify(ReadOnlySpan<byte> cookie)
    {
        if (cookie.Length != CookieLength)
        {
            return null;
        }
        Span<byte> mac = stackalloc byte[MacLength];
        HMACSHA256.HashData(_key, cookie[..FieldsLength], mac);
        if (!CryptographicOperations.FixedTimeEquals(mac, cookie[FieldsLength..]))
        {
            return null;
        }
        var created = DateTimeOffset.FromUnixTimeMilliseconds(BinaryPrimitives.ReadInt64BigEndian(cookie[24..]));
        var age = time.GetUtcNow() - created;
        if (age > lifetime || age < TimeSpan.FromSeconds(-5))
        {
            return null;
        }
        return new CookieState(
            BinaryPrimitives.ReadUInt32BigEndian(cookie),
            BinaryPrimitives.ReadUInt32BigEndian(cookie[4..]),
            BinaryPrimitives.ReadUInt32BigEndian(cookie[8..]),
            BinaryPrimitives.ReadUInt32BigEndian(cookie[12..]),
            BinaryPrimitives.ReadUInt32BigEndian(cookie[16..]),
            BinaryPrimitives.ReadUInt16BigEndian(cookie[20..]),
            BinaryPrimitives.ReadUInt16BigEndian(cookie[22..]));
    }
}
