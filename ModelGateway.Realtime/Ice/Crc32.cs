using ModelGateway.Realtime.Sctp;

namespace ModelGateway.Realtime.Ice;

/// <summary>CRC-32 of ISO/IEC 13239 (reflected 0xEDB88320), used by the STUN FINGERPRINT attribute (RFC 8489 §14.7).</summary>
internal static class Crc32
{
    private static readonly uint[] Table = Crc32c.BuildTable(0xEDB88320u);

    public static uint Compute(ReadOnlySpan<byte> data)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in data)
        {
            crc = Table[(crc ^ b) & 0xFF] ^ (crc >> 8);
        }
        return crc ^ 0xFFFFFFFFu;
    }
}
