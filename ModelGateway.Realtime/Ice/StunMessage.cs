using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace ModelGateway.Realtime.Ice;

/// <summary>One STUN attribute: its type and where its value lies in the message bytes.</summary>
internal readonly record struct StunAttribute(ushort Type, int ValueOffset, int Length);

/// <summary>
/// A parsed STUN message (RFC 8489 §5, §14): only what an ICE-lite agent needs. The bytes are kept so
/// that MESSAGE-INTEGRITY and FINGERPRINT can be checked over exactly what was received.
/// </summary>
internal sealed class StunMessage
{
    public const uint MagicCookie = 0x2112A442;
    public const int HeaderLength = 20;

    // Message types (RFC 8489 §18.2): method Binding (0x001) in the request / success / error classes.
    public const ushort BindingRequest = 0x0001;
    public const ushort BindingIndication = 0x0011;
    public const ushort BindingSuccess = 0x0101;
    public const ushort BindingError = 0x0111;

    // Attribute types (RFC 8489 §18.3, RFC 8445 §16.1).
    public const ushort Username = 0x0006;
    public const ushort MessageIntegrity = 0x0008;
    public const ushort ErrorCode = 0x0009;
    public const ushort XorMappedAddress = 0x0020;
    public const ushort Priority = 0x0024;
    public const ushort UseCandidate = 0x0025;
    public const ushort Software = 0x8022;
    public const ushort Fingerprint = 0x8028;
    public const ushort IceControlled = 0x8029;
    public const ushort IceControlling = 0x802A;

    /// <summary>XORed into the CRC-32 of FINGERPRINT (RFC 8489 §14.7).</summary>
    public const uint FingerprintXor = 0x5354554E;

    private readonly byte[] _bytes;

    private StunMessage(byte[] bytes, ushort type, List<StunAttribute> attributes)
    {
        _bytes = bytes;
        MessageType = type;
        Attributes = attributes;
    }

    public ushort MessageType { get; }
    public ReadOnlySpan<byte> TransactionId => _bytes.AsSpan(8, 12);
    public IReadOnlyList<StunAttribute> Attributes { get; }

    /// <summary>RFC 7983 §7: the first byte of a STUN message is 0..3; the magic cookie confirms it.</summary>
    public static bool LooksLikeStun(ReadOnlySpan<byte> datagram) =>
        datagram.Length >= HeaderLength && datagram[0] < 4 &&
        BinaryPrimitives.ReadUInt32BigEndian(datagram[4..]) == MagicCookie;

    public static StunMessage? TryParse(ReadOnlySpan<byte> datagram)
    {
        if (!LooksLikeStun(datagram))
        {
            return null;
        }
        var type = BinaryPrimitives.ReadUInt16BigEndian(datagram);
        var length = BinaryPrimitives.ReadUInt16BigEndian(datagram[2..]);
        // RFC 8489 §5: the length excludes the header and is a multiple of 4.
        if ((length & 3) != 0 || HeaderLength + length > datagram.Length)
        {
            return null;
        }
        var bytes = datagram[..(HeaderLength + length)].ToArray();
        var attributes = new List<StunAttribute>();
        var offset = HeaderLength;
        while (offset + 4 <= bytes.Length)
        {
            var attrType = BinaryPrimitives.ReadUInt16BigEndian(bytes.AsSpan(offset));
            var attrLength = BinaryPrimitives.ReadUInt16BigEndian(bytes.AsSpan(offset + 2));
            if (offset + 4 + attrLength > bytes.Length)
            {
                return null;
            }
            attributes.Add(new StunAttribute(attrType, offset + 4, attrLength));
            offset += 4 + ((attrLength + 3) & ~3);
        }
        return offset == bytes.Length ? new StunMessage(bytes, type, attributes) : null;
    }

    public StunAttribute? Find(ushort type)
    {
        foreach (var a in Attributes)
        {
            if (a.Type == type)
            {
                return a;
            }
        }
        return null;
    }

    public bool Has(ushort type) => Find(type) is not null;

    public ReadOnlySpan<byte> Value(StunAttribute attribute) => _bytes.AsSpan(attribute.ValueOffset, attribute.Length);

    public string? GetString(ushort type) => Find(type) is { } a ? Encoding.UTF8.GetString(Value(a)) : null;

    /// <summary>
    /// RFC 8489 §14.5: the HMAC-SHA1 covers the message up to the attribute before MESSAGE-INTEGRITY,
    /// with the header length adjusted to end just after MESSAGE-INTEGRITY. Attributes after it
    /// (only FINGERPRINT is allowed) are ignored.
    /// </summary>
    public bool VerifyMessageIntegrity(ReadOnlySpan<byte> key)
    {
        if (Find(MessageIntegrity) is not { Length: 20 } mi)
        {
            return false;
        }
        var start = mi.ValueOffset - 4;
        var covered = _bytes.AsSpan(0, start).ToArray();
        BinaryPrimitives.WriteUInt16BigEndian(covered.AsSpan(2), (ushort)(start + 24 - HeaderLength));
        Span<byte> mac = stackalloc byte[20];
        HMACSHA1.HashData(key, covered, mac);
        return CryptographicOperations.FixedTimeEquals(mac, Value(mi));
    }

    /// <summary>RFC 8489 §14.7: FINGERPRINT is the last attribute; CRC-32 of everything before it, XOR 0x5354554E.</summary>
    public bool VerifyFingerprint()
    {
        if (Attributes.Count == 0 || Attributes[^1] is not { Type: Fingerprint, Length: 4 } fp)
        {
            return false;
        }
        var start = fp.ValueOffset - 4;
        var covered = _bytes.AsSpan(0, start).ToArray();
        BinaryPrimitives.WriteUInt16BigEndian(covered.AsSpan(2), (ushort)(start + 8 - HeaderLength));
        var expected = Crc32.Compute(covered) ^ FingerprintXor;
        return BinaryPrimitives.ReadUInt32BigEndian(Value(fp)) == expected;
    }

    /// <summary>Decodes an XOR-MAPPED-ADDRESS value (RFC 8489 §14.2).</summary>
    public IPEndPoint? GetXorMappedAddress()
    {
        if (Find(XorMappedAddress) is not { } a)
        {
            return null;
        }
        var v = Value(a);
        if (v.Length < 8)
        {
            return null;
        }
        var port = (ushort)(BinaryPrimitives.ReadUInt16BigEndian(v[2..]) ^ (MagicCookie >> 16));
        var family = v[1];
        var addressLength = family == 1 ? 4 : 16;
        if (v.Length < 4 + addressLength)
        {
            return null;
        }
        var address = v.Slice(4, addressLength).ToArray();
        Span<byte> mask = stackalloc byte[16];
        BinaryPrimitives.WriteUInt32BigEndian(mask, MagicCookie);
        TransactionId.CopyTo(mask[4..]);
        for (var i = 0; i < address.Length; i++)
        {
            address[i] ^= mask[i];
        }
        return new IPEndPoint(new IPAddress(address), port);
    }
}

/// <summary>Builds a STUN message attribute by attribute; integrity and fingerprint are appended last.</summary>
internal sealed class StunMessageWriter
{
    private readonly MemoryStream _buffer = new();
    private readonly byte[] _transactionId;

    public StunMessageWriter(ushort messageType, ReadOnlySpan<byte> transactionId)
    {
        _transactionId = transactionId.ToArray();
        Span<byte> header = stackalloc byte[StunMessage.HeaderLength];
        BinaryPrimitives.WriteUInt16BigEndian(header, messageType);
        BinaryPrimitives.WriteUInt32BigEndian(header[4..], StunMessage.MagicCookie);
        transactionId.CopyTo(header[8..]);
        _buffer.Write(header);
    }

    public StunMessageWriter Add(ushort type, ReadOnlySpan<byte> value)
    {
        Span<byte> head = stackalloc byte[4];
        BinaryPrimitives.WriteUInt16BigEndian(head, type);
        BinaryPrimitives.WriteUInt16BigEndian(head[2..], (ushort)value.Length);
        _buffer.Write(head);
        _buffer.Write(value);
        // RFC 8489 §14: values are padded to a multiple of 4 bytes.
        for (var pad = (4 - (value.Length & 3)) & 3; pad > 0; pad--)
        {
            _buffer.WriteByte(0);
        }
        return this;
    }

    public StunMessageWriter AddString(ushort type, string value) => Add(type, Encoding.UTF8.GetBytes(value));

    /// <summary>RFC 8489 §14.2: port XOR the cookie's top 16 bits; address XOR cookie (+ transaction id for IPv6).</summary>
    public StunMessageWriter AddXorMappedAddress(IPEndPoint endPoint)
    {
        var address = endPoint.Address.IsIPv4MappedToIPv6 ? endPoint.Address.MapToIPv4() : endPoint.Address;
        var raw = address.GetAddressBytes();
        var value = new byte[4 + raw.Length];
        value[1] = address.AddressFamily == AddressFamily.InterNetwork ? (byte)1 : (byte)2;
        BinaryPrimitives.WriteUInt16BigEndian(value.AsSpan(2), (ushort)(endPoint.Port ^ (StunMessage.MagicCookie >> 16)));
        Span<byte> mask = stackalloc byte[16];
        BinaryPrimitives.WriteUInt32BigEndian(mask, StunMessage.MagicCookie);
        _transactionId.CopyTo(mask[4..]);
        for (var i = 0; i < raw.Length; i++)
        {
            value[4 + i] = (byte)(raw[i] ^ mask[i]);
        }
        return Add(StunMessage.XorMappedAddress, value);
    }

    /// <summary>RFC 8489 §14.8: class in the hundreds digit, number modulo 100.</summary>
    public StunMessageWriter AddErrorCode(int code, string reason)
    {
        var text = Encoding.UTF8.GetBytes(reason);
        var value = new byte[4 + text.Length];
        value[2] = (byte)(code / 100);
        value[3] = (byte)(code % 100);
        text.CopyTo(value, 4);
        return Add(StunMessage.ErrorCode, value);
    }

    public StunMessageWriter AddMessageIntegrity(ReadOnlySpan<byte> key)
    {
        SetLength((int)_buffer.Length - StunMessage.HeaderLength + 24);
        Span<byte> mac = stackalloc byte[20];
        HMACSHA1.HashData(key, _buffer.GetBuffer().AsSpan(0, (int)_buffer.Length), mac);
        return Add(StunMessage.MessageIntegrity, mac);
    }

    public StunMessageWriter AddFingerprint()
    {
        SetLength((int)_buffer.Length - StunMessage.HeaderLength + 8);
        var crc = Crc32.Compute(_buffer.GetBuffer().AsSpan(0, (int)_buffer.Length)) ^ StunMessage.FingerprintXor;
        Span<byte> value = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(value, crc);
        return Add(StunMessage.Fingerprint, value);
    }

    public byte[] ToArray()
    {
        SetLength((int)_buffer.Length - StunMessage.HeaderLength);
        return _buffer.ToArray();
    }

    private void SetLength(int length) =>
        BinaryPrimitives.WriteUInt16BigEndian(_buffer.GetBuffer().AsSpan(2), (ushort)length);
}
