using ModelGateway.Realtime.DataChannels;

namespace ModelGateway.Realtime.Tests.DataChannels;

public sealed class DcepTests
{
    [Fact]
    public void Open_for_a_reliable_ordered_channel_parses_rfc8832_layout()
    {
        // RFC 8832 §5.1: type 0x03, channel type, priority(2), reliability(4), label length(2), protocol length(2), label, protocol.
        var bytes = Convert.FromHexString("03" + "00" + "0100" + "00000000" + "0004" + "0004" + "63686174" + "6a736f6e");
        var open = DcepOpen.Parse(bytes)!;
        Assert.Equal(("chat", "json", (ushort)256, false), (open.Label, open.Protocol, open.Priority, open.Unordered));
        Assert.Equal(bytes, open.Encode());
    }

    [Fact]
    public void Unordered_bit_and_ack()
    {
        var open = new DcepOpen(0x81, 0, 3, "u", "");
        Assert.True(DcepOpen.Parse(open.Encode())!.Unordered);
        Assert.Equal(new byte[] { 0x02 }, DcepOpen.Ack());
        Assert.Null(DcepOpen.Parse(new byte[] { 0x03, 0, 0 }));
    }

    [Fact]
    public void Ppids_are_those_of_rfc8831_and_rfc8832() =>
        Assert.Equal([50u, 51u, 53u, 56u, 57u], [Ppid.Dcep, Ppid.String, Ppid.Binary, Ppid.StringEmpty, Ppid.BinaryEmpty]);
}
