using System.Buffers.Binary;

namespace ModelGateway.Realtime.Sctp;

/// <summary>Chunk types used here (RFC 4960 §3.2, RFC 6525 §3.1, RFC 3758 §3.2).</summary>
internal static class ChunkType
{
    public const byte Data = 0;
    public const byte Init = 1;
    public const byte InitAck = 2;
    public const byte Sack = 3;
    public const byte Heartbeat = 4;
    public const byte HeartbeatAck = 5;
    public const byte Abort = 6;
    public const byte Shutdown = 7;
    public const byte ShutdownAck = 8;
    public const byte Error = 9;
    public const byte CookieEcho = 10;
    public const byte CookieAck = 11;
    public const byte ShutdownComplete = 14;
    public const byte ReConfig = 130;
    public const byte ForwardTsn = 192;
}

/// <summary>One chunk: type, flags and value (the bytes after the 4-byte chunk header, without padding).</summary>
internal readonly record struct SctpChunk(byte Type, byte Flags, ReadOnlyMemory<byte> Value)
{
    public int EncodedLength => 4 + ((Value.Length + 3) & ~3);
}

/// <summary>
/// An SCTP packet (RFC 4960 §3): 12-byte common header (ports, verification tag, CRC32c) and chunks,
/// each padded to 4 bytes. Carried as the payload of DTLS records (RFC 8261 §4).
/// </summary>
internal sealed class SctpPacket(ushort sourcePort, ushort destinationPort, uint verificationTag, IReadOnlyList<SctpChunk> chunks)
{
    public const int CommonHeaderLength = 12;

    public ushort SourcePort { get; } = sourcePort;
    public ushort DestinationPort { get; } = destinationPort;
    public uint VerificationTag { get; } = verificationTag;
    public IReadOnlyList<SctpChunk> Chunks { get; } = chunks;

    public static SctpPacket? TryParse(ReadOnlySpan<byte> data)
    {
        if (data.Length < CommonHeaderLength + 4)
        {
            return null;
        }
        // RFC 4960 Appendix B / RFC 3309: CRC32c over the packet with the checksum field zeroed; the
        // reflected CRC is carried least-significant byte first, which is how every interoperating
        // stack (usrsctp, dcsctp) reads it.
        var copy = data.ToArray();
        var received = BinaryPrimitives.ReadUInt32LittleEndian(copy.AsSpan(8));
        copy.AsSpan(8, 4).Clear();
        if (Crc32c.Compute(copy) != received)
        {
            return null;
        }
        var chunks = new List<SctpChunk>();
        var offset = CommonHeaderLength;
        while (offset + 4 <= copy.Length)
        {
            var length = BinaryPrimitives.ReadUInt16BigEndian(copy.AsSpan(offset + 2));
            if (length < 4 || offset + length > copy.Length)
            {
                return null;
            }
            chunks.Add(new SctpChunk(copy[offset], copy[offset + 1], copy.AsMemory(offset + 4, length - 4)));
            offset += (length + 3) & ~3;
        }
        return new SctpPacket(
            BinaryPrimitives.ReadUInt16BigEndian(copy),
            BinaryPrimitives.ReadUInt16BigEndian(copy.AsSpan(2)),
            BinaryPrimitives.ReadUInt32BigEndian(copy.AsSpan(4)),
            chunks);
    }

    public byte[] Encode()
    {
        var length = CommonHeaderLength;
        foreach (var c in Chunks)
        {
            length += c.EncodedLength;
        }
        var bytes = new byte[length];
        BinaryPrimitives.WriteUInt16BigEndian(bytes, SourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(2), DestinationPort);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(4), VerificationTag);
        var offset = CommonHeaderLength;
        foreach (var c in Chunks)
        {
            bytes[offset] = c.Type;
            bytes[offset + 1] = c.Flags;
            // RFC 4960 §3.2: the length excludes padding.
            BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(offset + 2), (ushort)(4 + c.Value.Length));
            c.Value.Span.CopyTo(bytes.AsSpan(offset + 4));
            offset += c.EncodedLength;
        }
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(8), Crc32c.Compute(bytes));
        return bytes;
    }
}
