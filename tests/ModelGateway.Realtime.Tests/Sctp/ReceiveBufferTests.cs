using ModelGateway.Realtime.Sctp;

namespace ModelGateway.Realtime.Tests.Sctp;

public sealed class ReceiveBufferTests
{
    private static DataChunk Fragment(uint tsn, ushort ssn, string text, bool b, bool e, ushort stream = 0, bool unordered = false) =>
        new(tsn, stream, ssn, 51, System.Text.Encoding.UTF8.GetBytes(text), b, e, unordered);

    [Fact]
    public void Fragments_arriving_out_of_order_are_reassembled()
    {
        var buffer = new ReceiveBuffer(100, 1 << 20);
        var delivered = new List<ReceivedMessage>();
        buffer.Receive(Fragment(102, 0, "C", false, true), delivered);
        buffer.Receive(Fragment(100, 0, "A", true, false), delivered);
        Assert.Empty(delivered);
        buffer.Receive(Fragment(101, 0, "B", false, false), delivered);
        Assert.Equal("ABC", System.Text.Encoding.UTF8.GetString(Assert.Single(delivered).Data));
        Assert.Equal(102u, buffer.CumulativeTsn);
        Assert.Equal(1u << 20, buffer.ReceiverWindow);
    }

    [Fact]
    public void Ordered_messages_wait_for_their_sequence_number_but_unordered_do_not()
    {
        var buffer = new ReceiveBuffer(1, 1 << 20);
        var delivered = new List<ReceivedMessage>();
        buffer.Receive(Fragment(2, 1, "second", true, true), delivered);
        buffer.Receive(Fragment(3, 0, "unordered", true, true, stream: 2, unordered: true), delivered);
        Assert.Equal(["unordered"], delivered.Select(m => System.Text.Encoding.UTF8.GetString(m.Data)));
        buffer.Receive(Fragment(1, 0, "first", true, true), delivered);
        Assert.Equal(["unordered", "first", "second"], delivered.Select(m => System.Text.Encoding.UTF8.GetString(m.Data)));
    }

    [Fact]
    public void Sack_reports_gap_blocks_relative_to_the_cumulative_tsn_and_duplicates_once()
    {
        var buffer = new ReceiveBuffer(1, 1 << 20);
        var delivered = new List<ReceivedMessage>();
        foreach (var tsn in new uint[] { 1, 2, 4, 5, 7 })
        {
            buffer.Receive(Fragment(tsn, (ushort)(tsn - 1), "x", true, true), delivered);
        }
        buffer.Receive(Fragment(4, 3, "x", true, true), delivered); // duplicate

        var sack = buffer.CreateSack();
        Assert.Equal(2u, sack.CumulativeTsnAck);
        // RFC 4960 §3.3.4: blocks are offsets from the cumulative TSN: 4..5 → 2..3, 7 → 5..5.
        Assert.Equal([new GapBlock(2, 3), new GapBlock(5, 5)], sack.GapBlocks);
        Assert.Equal([4u], sack.DuplicateTsns);
        Assert.Empty(buffer.CreateSack().DuplicateTsns);

        buffer.Receive(Fragment(3, 2, "x", true, true), delivered);
        var after = buffer.CreateSack();
        Assert.Equal(5u, after.CumulativeTsnAck);
        Assert.Equal([new GapBlock(2, 2)], after.GapBlocks);
    }

    [Fact]
    public void Tsns_wrap_around()
    {
        var buffer = new ReceiveBuffer(0xFFFFFFFE, 1 << 20);
        var delivered = new List<ReceivedMessage>();
        buffer.Receive(Fragment(0xFFFFFFFE, 0, "a", true, false), delivered);
        buffer.Receive(Fragment(0, 0, "c", false, true), delivered);
        buffer.Receive(Fragment(0xFFFFFFFF, 0, "b", false, false), delivered);
        Assert.Equal("abc", System.Text.Encoding.UTF8.GetString(Assert.Single(delivered).Data));
        Assert.Equal(0u, buffer.CumulativeTsn);
    }

    [Fact]
    public void A_full_window_drops_new_data_but_takes_data_that_fills_a_hole()
    {
        var buffer = new ReceiveBuffer(1, 10);
        var delivered = new List<ReceivedMessage>();
        Assert.True(buffer.Receive(Fragment(2, 0, "123456789", true, false), delivered));
        Assert.False(buffer.Receive(Fragment(3, 0, "ab", false, true), delivered));
        Assert.True(buffer.Receive(Fragment(1, 0, "ab", true, true, stream: 4), delivered));
    }
}
