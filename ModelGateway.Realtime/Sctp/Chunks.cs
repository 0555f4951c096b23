using System.Buffers.Binary;

namespace ModelGateway.Realtime.Sctp;

/// <summary>DATA chunk (RFC 4960 §3.3.1) with the I bit of RFC 7053.</summary>
internal sealed record DataChunk(uint Tsn, ushort StreamId, ushort StreamSequence, uint Ppid, ReadOnlyMemory<byte> UserData, bool Beginning, bool Ending, bool Unordered)
{
    public const int HeaderLength = 12;
    private const byte EndingFlag = 0x01, BeginningFlag = 0x02, UnorderedFlag = 0x04;

    public static DataChunk? Decode(SctpChunk chunk)
    {
        var v = chunk.Value.Span;
        if (v.Length < HeaderLength)
        {
            return null;
        }
        return new DataChunk(
            BinaryPrimitives.ReadUInt32BigEndian(v),
            BinaryPrimitives.ReadUInt16BigEndian(v[4..]),
            BinaryPrimitives.ReadUInt16BigEndian(v[6..]),
            BinaryPrimitives.ReadUInt32BigEndian(v[8..]),
            chunk.Value[HeaderLength..],
            (chunk.Flags & BeginningFlag) != 0,
            (chunk.Flags & EndingFlag) != 0,
            (chunk.Flags & UnorderedFlag) != 0);
    }

    public SctpChunk Encode()
    {
        var value = new byte[HeaderLength + UserData.Length];
        BinaryPrimitives.WriteUInt32BigEndian(value, Tsn);
        BinaryPrimitives.WriteUInt16BigEndian(value.AsSpan(4), StreamId);
        BinaryPrimitives.WriteUInt16BigEndian(value.AsSpan(6), StreamSequence);
        BinaryPrimitives.WriteUInt32BigEndian(value.AsSpan(8), Ppid);
        UserData.Span.CopyTo(value.AsSpan(HeaderLength));
        var flags = (byte)((Beginning ? BeginningFlag : 0) | (Ending ? EndingFlag : 0) | (Unordered ? UnorderedFlag : 0));
        return new SctpChunk(ChunkType.Data, flags, value);
    }
}

/// <summary>INIT and INIT ACK (RFC 4960 §3.3.2, §3.3.3): fixed fields then TLV parameters.</summary>
internal sealed record InitChunk(uint InitiateTag, uint AdvertisedReceiverWindow, ushort OutboundStreams, ushort InboundStreams, uint InitialTsn, IReadOnlyList<(ushort Type, ReadOnlyMemory<byte> Value)> Parameters)
{
    public const ushort StateCookieParameter = 7;
    public const ushort UnrecognizedParameter = 8;

    public static InitChunk? Decode(SctpChunk chunk)
    {
        var v = chunk.Value;
        if (v.Length < 16)
        {
            return null;
        }
        var s = v.Span;
        var parameters = new List<(ushort, ReadOnlyMemory<byte>)>();
        var offset = 16;
        while (offset + 4 <= v.Length)
        {
            var type = BinaryPrimitives.ReadUInt16BigEndian(s[offset..]);
            var length = BinaryPrimitives.ReadUInt16BigEndian(s[(offset + 2)..]);
            if (length < 4 || offset + length > v.Length)
            {
                return null;
            }
            parameters.Add((type, v.Slice(offset + 4, length - 4)));
            offset += (length + 3) & ~3;
        }
        return new InitChunk(
            BinaryPrimitives.ReadUInt32BigEndian(s),
            BinaryPrimitives.ReadUInt32BigEndian(s[4..]),
            BinaryPrimitives.ReadUInt16BigEndian(s[8..]),
            BinaryPrimitives.ReadUInt16BigEndian(s[10..]),
            BinaryPrimitives.ReadUInt32BigEndian(s[12..]),
            parameters);
    }

    public SctpChunk Encode(byte type)
    {
        var length = 16;
        foreach (var p in Parameters)
        {
            length += (4 + p.Value.Length + 3) & ~3;
        }
        var value = new byte[length];
        BinaryPrimitives.WriteUInt32BigEndian(value, InitiateTag);
        BinaryPrimitives.WriteUInt32BigEndian(value.AsSpan(4), AdvertisedReceiverWindow);
        BinaryPrimitives.WriteUInt16BigEndian(value.AsSpan(8), OutboundStreams);
        BinaryPrimitives.WriteUInt16BigEndian(value.AsSpan(10), InboundStreams);
        BinaryPrimitives.WriteUInt32BigEndian(value.AsSpan(12), InitialTsn);
        var offset = 16;
        foreach (var (pType, pValue) in Parameters)
        {
            BinaryPrimitives.WriteUInt16BigEndian(value.AsSpan(offset), pType);
            BinaryPrimitives.WriteUInt16BigEndian(value.AsSpan(offset + 2), (ushort)(4 + pValue.Length));
            pValue.Span.CopyTo(value.AsSpan(offset + 4));
            offset += (4 + pValue.Length + 3) & ~3;
        }
        return new SctpChunk(type, 0, value);
    }
}

/// <summary>A gap ack block: TSN offsets from the cumulative TSN ack (RFC 4960 §3.3.4).</summary>
internal readonly record struct GapBlock(ushort Start, ushort End);

/// <summary>SACK (RFC 4960 §3.3.4).</summary>
internal sealed record SackChunk(uint CumulativeTsnAck, uint AdvertisedReceiverWindow, IReadOnlyList<GapBlock> GapBlocks, IReadOnlyList<uint> DuplicateTsns)
{
    public static SackChunk? Decode(SctpChunk chunk)
    {
        var s = chunk.Value.Span;
        if (s.Length < 12)
        {
            return null;
        }
        int gaps = BinaryPrimitives.ReadUInt16BigEndian(s[8..]);
        int dups = BinaryPrimitives.ReadUInt16BigEndian(s[10..]);
        if (s.Length < 12 + 4 * gaps + 4 * dups)
        {
            return null;
        }
        var blocks = new GapBlock[gaps];
        for (var i = 0; i < gaps; i++)
        {
            blocks[i] = new GapBlock(BinaryPrimitives.ReadUInt16BigEndian(s[(12 + 4 * i)..]), BinaryPrimitives.ReadUInt16BigEndian(s[(14 + 4 * i)..]));
        }
        var duplicates = new uint[dups];
        for (var i = 0; i < dups; i++)
        {
            duplicates[i] = BinaryPrimitives.ReadUInt32BigEndian(s[(12 + 4 * gaps + 4 * i)..]);
        }
        return new SackChunk(BinaryPrimitives.ReadUInt32BigEndian(s), BinaryPrimitives.ReadUInt32BigEndian(s[4..]), blocks, duplicates);
    }

    public SctpChunk Encode()
    {
        var value = new byte[12 + 4 * GapBlocks.Count + 4 * DuplicateTsns.Count];
        BinaryPrimitives.WriteUInt32BigEndian(value, CumulativeTsnAck);
        BinaryPrimitives.WriteUInt32BigEndian(value.AsSpan(4), AdvertisedReceiverWindow);
        BinaryPrimitives.WriteUInt16BigEndian(value.AsSpan(8), (ushort)GapBlocks.Count);
        BinaryPrimitives.WriteUInt16BigEndian(value.AsSpan(10), (ushort)DuplicateTsns.Count);
        var offset = 12;
        foreach (var g in GapBlocks)
        {
            BinaryPrimitives.WriteUInt16BigEndian(value.AsSpan(offset), g.Start);
            BinaryPrimitives.WriteUInt16BigEndian(value.AsSpan(offset + 2), g.End);
            offset += 4;
        }
        foreach (var d in DuplicateTsns)
        {
            BinaryPrimitives.WriteUInt32BigEndian(value.AsSpan(offset), d);
            offset += 4;
        }
        return new SctpChunk(ChunkType.Sack, 0, value);
    }
}

/// <summary>Serial number arithmetic on 32-bit TSNs (RFC 4960 §1.6, RFC 1982).</summary>
internal static class Serial
{
    public static bool Lt(uint a, uint b) => a != b && (int)(a - b) < 0;
    public static bool Le(uint a, uint b) => a == b || (int)(a - b) < 0;
    public static bool Gt(uint a, uint b) => Lt(b, a);
    public static bool Ge(uint a, uint b) => Le(b, a);
}
