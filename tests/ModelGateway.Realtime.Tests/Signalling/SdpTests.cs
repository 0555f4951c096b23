using System.Net;
using ModelGateway.Realtime.Signalling;

namespace ModelGateway.Realtime.Tests.Signalling;

public sealed class SdpTests
{
    [Fact]
    public void Parses_a_chromium_style_data_channel_offer()
    {
        var offer = SdpOffer.Parse(SignallingApiTests.Offer());
        Assert.Equal("Ab3d", offer.IceUfrag);
        Assert.Equal("0123456789abcdefghijklmn", offer.IcePassword);
        Assert.Equal(Enumerable.Range(0, 32).Select(i => (byte)i), offer.Fingerprint);
        Assert.Equal(5000, offer.SctpPort);
        Assert.Equal(262144, offer.MaxMessageSize);
        Assert.Equal("0", offer.DataSection.Mid);
    }

    [Fact]
    public void Session_level_credentials_and_default_message_size_are_honoured()
    {
        var sdp = SignallingApiTests.Offer()
            .Replace("a=ice-ufrag:Ab3d\r\n", "").Replace("a=max-message-size:262144\r\n", "")
            .Replace("t=0 0\r\n", "t=0 0\r\na=ice-ufrag:Sess\r\n");
        var offer = SdpOffer.Parse(sdp.Replace("\r\n", "\n"));
        Assert.Equal("Sess", offer.IceUfrag);
        Assert.Equal(SdpOffer.DefaultMaxMessageSize, offer.MaxMessageSize);
    }

    [Theory]
    [InlineData("a=fingerprint:sha-256 ", "a=fingerprint:sha-1 ", "sha-256")]
    [InlineData("a=setup:actpass", "a=setup:passive", "setup")]
    [InlineData("a=ice-pwd:0123456789abcdefghijklmn", "a=ice-pwd:short", "length")]
    [InlineData("a=sctp-port:5000", "a=sctp-port:x", "sctp-port")]
    public void Refuses_what_cannot_be_answered(string from, string to, string mention)
    {
        var e = Assert.Throws<SdpException>(() => SdpOffer.Parse(SignallingApiTests.Offer().Replace(from, to)));
        Assert.Contains(mention, e.Message);
    }

    [Fact]
    public void Answer_is_ice_lite_passive_with_host_candidates_and_rejects_media_sections()
    {
        var sdp = SignallingApiTests.Offer().Replace("a=group:BUNDLE 0", "a=group:BUNDLE 0 1") +
                  "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\n";
        var offer = SdpOffer.Parse(sdp);
        var answer = SdpAnswer.Create(offer, new SdpAnswerParameters("ufrag", "password-password-1234", "AA:BB",
            [new IPEndPoint(IPAddress.Loopback, 40000), new IPEndPoint(IPAddress.Parse("10.1.2.3"), 40000)], 1 << 18));
        var lines = answer.Split("\r\n");
        Assert.Equal("v=0", lines[0]);
        Assert.Contains("a=ice-lite", lines);
        Assert.Contains("a=group:BUNDLE 0", lines);
        Assert.Contains("m=application 40000 UDP/DTLS/SCTP webrtc-datachannel", lines);
        Assert.Contains("a=setup:passive", lines);
        Assert.Contains("a=fingerprint:sha-256 AA:BB", lines);
        Assert.Contains("a=max-message-size:262144", lines);
        Assert.Contains("m=audio 0 UDP/TLS/RTP/SAVPF 111", lines);
        Assert.Equal(2, lines.Count(l => l.StartsWith("a=candidate:", StringComparison.Ordinal)));
        Assert.Contains(lines, l => l.StartsWith("a=candidate:2 1 udp ", StringComparison.Ordinal) && l.EndsWith("10.1.2.3 40000 typ host", StringComparison.Ordinal));
        // Session-level ice-lite comes before the first m= line (RFC 8839 §5.3).
        Assert.True(Array.IndexOf(lines, "a=ice-lite") < Array.FindIndex(lines, l => l.StartsWith("m=", StringComparison.Ordinal)));
    }

    [Fact]
    public void Fingerprint_format_is_colon_separated_upper_hex() =>
        Assert.Equal("00:0A:FF", SdpAnswer.FormatFingerprint([0x00, 0x0A, 0xFF]));
}
