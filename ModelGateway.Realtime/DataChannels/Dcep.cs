using System.Buffers.Binary;
using System.Text;

namespace ModelGateway.Realtime.DataChannels;

/// <summary>SCTP payload protocol identifiers of WebRTC (RFC 8831 §8, RFC 8832 §8.1).</summary>
internal static class Ppid
{
    public const uint Dcep = 50;
    public const uint String = 51;
    public const uint Binary = 53;
    public const uint StringEmpty = 56;
    public const uint BinaryEmpty = 57;
}

/// <summary>DATA_CHANNEL_OPEN (RFC 8832 §5.1).</summary>
internal sealed record DcepOpen(byte ChannelType, ushort Priority, uint ReliabilityParameter, string Label, string Protocol)
{
    public const byte MessageType = 0x03;
    public const byte AckMessageType = 0x02;

    /// <summary>§5.1: the 0x80 bit of the channel type means unordered delivery.</summary>
    public bool Unordered => (ChannelType & 0x80) != 0;

    public static DcepOpen? Parse(ReadOnlySpan<byte> m)
    {
        if (m.Length < 12 || m[0] != MessageType)
        {
            return null;
        }
        int labelLength = BinaryPrimitives.ReadUInt16BigEndian(m[8..]);
        int protocolLength = BinaryPrimitives.ReadUInt16BigEndian(m[10..]);
        if (m.Length < 12 + labelLength + protocolLength)
        {
            return null;
        }
        return new DcepOpen(
            m[1],
            BinaryPrimitives.ReadUInt16BigEndian(m[2..]),
            BinaryPrimitives.ReadUInt32BigEndian(m[4..]),
            Encoding.UTF8.GetString(m.Slice(12, labelLength)),
            Encoding.UTF8.GetString(m.Slice(12 + labelLength, protocolLength)));
    }

    public byte[] Encode()
    {
        var label = Encoding.UTF8.GetBytes(Label);
        var protocol = Encoding.UTF8.GetBytes(Protocol);
        var m = new byte[12 + label.Length + protocol.Length];
        m[0] = MessageType;
        m[1] = ChannelType;
        BinaryPrimitives.WriteUInt16BigEndian(m.AsSpan(2), Priority);
        BinaryPrimitives.WriteUInt32BigEndian(m.AsSpan(4), ReliabilityParameter);
        BinaryPrimitives.WriteUInt16BigEndian(m.AsSpan(8), (ushort)label.Length);
        BinaryPrimitives.WriteUInt16BigEndian(m.AsSpan(10), (ushort)protocol.Length);
        label.CopyTo(m, 12);
        protocol.CopyTo(m, 12 + label.Length);
        return m;
    }

    /// <summary>DATA_CHANNEL_ACK (RFC 8832 §5.2): the message type alone.</summary>
    public static byte[] Ack() => [AckMessageType];
}
