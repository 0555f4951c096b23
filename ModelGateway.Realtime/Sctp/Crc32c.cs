namespace ModelGateway.Realtime.Sctp;

/// <summary>
/// CRC32c (Castagnoli), the SCTP checksum (RFC 4960 §6.8 and Appendix B, RFC 3309):
/// reflected polynomial 0x82F63B78, initial value and final XOR 0xFFFFFFFF.
/// </summary>
internal static class Crc32c
{
    private static readonly uint[] Table = BuildTable(0x82F63B78u);

    public static uint Compute(ReadOnlySpan<byte> data)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in data)
        {
            crc = Table[(crc ^ b) & 0xFF] ^ (crc >> 8);
        }
        return crc ^ 0xFFFFFFFFu;
    }

    internal static uint[] BuildTable(uint polynomial)
    {
        var table = new uint[256];
        for (var i = 0u; i < 256; i++)
        {
            var c = i;
            for (var k = 0; k < 8; k++)
            {
                c = (c & 1) != 0 ? polynomial ^ (c >> 1) : c >> 1;
            }
            table[i] = c;
        }
        return table;
    }
}
