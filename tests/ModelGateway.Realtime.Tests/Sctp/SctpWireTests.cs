using ModelGateway.Realtime.Sctp;

namespace ModelGateway.Realtime.Tests.Sctp;

public sealed class SctpWireTests
{
    // RFC 3720 Appendix B.4 CRC32c examples (the check value of "123456789" is in RFC 3309's family too).
    [Fact]
    public void Crc32c_matches_the_rfc3720_vectors()
    {
        Assert.Equal(0xE3069283u, Crc32c.Compute("123456789"u8));
        Assert.Equal(0x8A9136AAu, Crc32c.Compute(new byte[32]));
        Assert.Equal(0x62A8AB43u, Crc32c.Compute(Enumerable.Repeat((byte)0xFF, 32).ToArray()));
        Assert.Equal(0x46DD794Eu, Crc32c.Compute(Enumerable.Range(0, 32).Select(i => (byte)i).ToArray()));
    }

    [Fact]
    public void Packet_round_trips_and_a_corrupt_checksum_is_refused()
    {
        var data = new DataChunk(42, 2, 7, 51, "hello"u8.ToArray(), true, true, false);
        var packet = new SctpPacket(5000, 5000, 0xDEADBEEF, [data.Encode(), new SctpChunk(ChunkType.CookieAck, 0, ReadOnlyMemory<byte>.Empty)]);
        var bytes = packet.Encode();
        Assert.Equal(0, bytes.Length % 4);

        var parsed = SctpPacket.TryParse(bytes)!;
        Assert.Equal(0xDEADBEEFu, parsed.VerificationTag);
        Assert.Equal(2, parsed.Chunks.Count);
        var decoded = DataChunk.Decode(parsed.Chunks[0])!;
        Assert.Equal((42u, (ushort)2, (ushort)7, 51u, true, true, false), (decoded.Tsn, decoded.StreamId, decoded.StreamSequence, decoded.Ppid, decoded.Beginning, decoded.Ending, decoded.Unordered));
        Assert.Equal("hello"u8.ToArray(), decoded.UserData.ToArray());
        Assert.Equal(ChunkType.CookieAck, parsed.Chunks[1].Type);

        bytes[^1] ^= 0x40;
        Assert.Null(SctpPacket.TryParse(bytes));
    }

    [Fact]
    public void Data_chunk_flags_follow_rfc4960_and_rfc7053()
    {
        var chunk = new DataChunk(1, 0, 0, 53, new byte[] { 1 }, Beginning: true, Ending: false, Unordered: true).Encode();
        Assert.Equal(0x06, chunk.Flags); // U=0x04, B=0x02, E=0x01
        Assert.Equal(new byte[] { 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 53, 1 }, chunk.Value.ToArray());
    }

    [Fact]
    public void Init_round_trips_with_parameters()
    {
        var init = new InitChunk(0x01020304, 131072, 1024, 2048, 99, [(0xC000, ReadOnlyMemory<byte>.Empty), (0x8008, new byte[] { 0x82, 0xC0, 0x00 })]);
        var chunk = init.Encode(ChunkType.Init);
        // fixed part 16 bytes + 4 (empty param) + 8 (3-byte param padded)
        Assert.Equal(28, chunk.Value.Length);
        var parsed = InitChunk.Decode(chunk)!;
        Assert.Equal((0x01020304u, 131072u, (ushort)1024, (ushort)2048, 99u), (parsed.InitiateTag, parsed.AdvertisedReceiverWindow, parsed.OutboundStreams, parsed.InboundStreams, parsed.InitialTsn));
        Assert.Equal([(ushort)0xC000, (ushort)0x8008], parsed.Parameters.Select(p => p.Type));
        Assert.Equal(new byte[] { 0x82, 0xC0, 0x00 }, parsed.Parameters[1].Value.ToArray());
    }

    [Fact]
    public void Sack_round_trips_gap_blocks_and_duplicates()
    {
        var sack = new SackChunk(1000, 65536, [new GapBlock(2, 3), new GapBlock(5, 5)], [998u]);
        var bytes = sack.Encode();
        Assert.Equal(Convert.FromHexString("000003e8" + "00010000" + "0002" + "0001" + "00020003" + "00050005" + "000003e6"), bytes.Value.ToArray());
        var parsed = SackChunk.Decode(bytes)!;
        Assert.Equal(1000u, parsed.CumulativeTsnAck);
        Assert.Equal([new GapBlock(2, 3), new GapBlock(5, 5)], parsed.GapBlocks);
        Assert.Equal([998u], parsed.DuplicateTsns);
    }

    [Fact]
    public void Serial_arithmetic_wraps()
    {
        Assert.True(Serial.Lt(0xFFFFFFFF, 0));
        Assert.True(Serial.Gt(1, 0xFFFFFFF0));
        Assert.True(Serial.Le(5, 5));
    }

    [Fact]
    public void State_cookie_verifies_and_expires()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.UtcNow);
        var signer = new StateCookieSigner(time, TimeSpan.FromSeconds(60));
        var state = new CookieState(1, 2, 3, 4, 5, 6, 7);
        var cookie = signer.Create(state);
        Assert.Equal(state, signer.Verify(cookie));
        var forged = (byte[])cookie.Clone();
        forged[0] ^= 1;
        Assert.Null(signer.Verify(forged));
        time.Advance(TimeSpan.FromSeconds(61));
        Assert.Null(signer.Verify(cookie));
    }
}
