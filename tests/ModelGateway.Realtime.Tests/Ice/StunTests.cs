using System.Net;
using System.Text;
using ModelGateway.Realtime.Ice;
using Microsoft.Extensions.Time.Testing;

namespace ModelGateway.Realtime.Tests.Ice;

public sealed class StunTests
{
    // RFC 5769 §2.1 Sample Request: username "evtj:h6vY", password "VOkJxbRl1RmTxUk/WvJxBt".
    private static readonly byte[] SampleRequest = Convert.FromHexString(
        "000100582112a442b7e7a701bc34d686fa87dfae" +
        "80220010" + "5354554e207465737420636c69656e74" +
        "00240004" + "6e0001ff" +
        "80290008" + "932ff9b151263b36" +
        "00060009" + "6576746a3a68367659202020" +
        "00080014" + "9aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2" +
        "80280004" + "e57a3bcf");

    // RFC 5769 §2.2 Sample IPv4 Response: mapped address 192.0.2.1 port 32853.
    private static readonly byte[] SampleIPv4Response = Convert.FromHexString(
        "0101003c2112a442b7e7a701bc34d686fa87dfae" +
        "8022000b" + "7465737420766563746f7220" +
        "00200008" + "0001a147e112a643" +
        "00080014" + "2b91f599fd9e90c38c7489f92af9ba53f06be7d7" +
        "80280004" + "c07d4c96");

    private static readonly byte[] Password = Encoding.UTF8.GetBytes("VOkJxbRl1RmTxUk/WvJxBt");

    [Fact]
    public void Rfc5769_sample_request_verifies()
    {
        var message = StunMessage.TryParse(SampleRequest)!;
        Assert.Equal(StunMessage.BindingRequest, message.MessageType);
        Assert.Equal("evtj:h6vY", message.GetString(StunMessage.Username));
        Assert.Equal("STUN test client", message.GetString(StunMessage.Software));
        Assert.True(message.Has(StunMessage.Priority));
        Assert.True(message.VerifyMessageIntegrity(Password));
        Assert.True(message.VerifyFingerprint());
        Assert.False(message.VerifyMessageIntegrity("wrong password"u8));
    }

    [Fact]
    public void Rfc5769_sample_ipv4_response_verifies_and_decodes()
    {
        var message = StunMessage.TryParse(SampleIPv4Response)!;
        Assert.Equal(StunMessage.BindingSuccess, message.MessageType);
        Assert.True(message.VerifyMessageIntegrity(Password));
        Assert.True(message.VerifyFingerprint());
        Assert.Equal(new IPEndPoint(IPAddress.Parse("192.0.2.1"), 32853), message.GetXorMappedAddress());
    }

    [Fact]
    public void Writer_encodes_the_rfc5769_xor_mapped_address_and_valid_integrity()
    {
        var transaction = SampleIPv4Response.AsSpan(8, 12);
        var bytes = new StunMessageWriter(StunMessage.BindingSuccess, transaction)
            .AddXorMappedAddress(new IPEndPoint(IPAddress.Parse("192.0.2.1"), 32853))
            .AddMessageIntegrity(Password)
            .AddFingerprint()
            .ToArray();
        Assert.Equal(Convert.FromHexString("002000080001a147e112a643"), bytes.AsSpan(20, 12).ToArray());
        var parsed = StunMessage.TryParse(bytes)!;
        Assert.True(parsed.VerifyMessageIntegrity(Password));
        Assert.True(parsed.VerifyFingerprint());
    }

    [Fact]
    public void A_flipped_bit_fails_integrity_and_fingerprint()
    {
        var tampered = (byte[])SampleRequest.Clone();
        tampered[30] ^= 1; // inside SOFTWARE
        var message = StunMessage.TryParse(tampered)!;
        Assert.False(message.VerifyMessageIntegrity(Password));
        Assert.False(message.VerifyFingerprint());
    }

    [Fact]
    public void Stun_crc32_check_value() => Assert.Equal(0xCBF43926u, Crc32.Compute("123456789"u8));

    [Theory]
    [InlineData(new byte[] { 0x16, 0xfe, 0xfd }, false)] // DTLS handshake record
    [InlineData(new byte[] { 0x80, 0x60 }, false)]       // RTP
    public void Only_stun_looks_like_stun(byte[] prefix, bool expected)
    {
        var datagram = new byte[40];
        prefix.CopyTo(datagram, 0);
        Assert.Equal(expected, StunMessage.LooksLikeStun(datagram));
        Assert.True(StunMessage.LooksLikeStun(SampleRequest));
    }

    [Fact]
    public void Ice_lite_agent_answers_a_valid_check_and_selects_its_address()
    {
        var time = new FakeTimeProvider();
        var local = new IceCredentials("LoCa", "local-password-0123456789");
        var agent = new IceLiteAgent(local, "ReMo", time);
        var from = new IPEndPoint(IPAddress.Loopback, 50_000);
        var request = Check("LoCa:ReMo", local.Password, useCandidate: true);

        Assert.Equal(StunOutcome.Accepted, agent.Handle(StunMessage.TryParse(request)!, from, out var response));
        var answer = StunMessage.TryParse(response!)!;
        Assert.Equal(StunMessage.BindingSuccess, answer.MessageType);
        Assert.True(answer.VerifyMessageIntegrity(Encoding.UTF8.GetBytes(local.Password)));
        Assert.True(answer.VerifyFingerprint());
        Assert.Equal(from, answer.GetXorMappedAddress());
        Assert.Equal(from, agent.SelectedRemote);

        time.Advance(TimeSpan.FromSeconds(20));
        Assert.Equal(TimeSpan.FromSeconds(20), agent.SinceLastConsent);
        agent.Handle(StunMessage.TryParse(Check("LoCa:ReMo", local.Password, useCandidate: false))!, from, out _);
        Assert.Equal(TimeSpan.Zero, agent.SinceLastConsent);
    }

    [Theory]
    [InlineData("LoCa:ReMo", "not-the-password-0123456789", 401)]
    [InlineData("Other:ReMo", "local-password-0123456789", 401)]
    public void Ice_lite_agent_rejects_bad_credentials_with_401(string username, string password, int code)
    {
        var local = new IceCredentials("LoCa", "local-password-0123456789");
        var agent = new IceLiteAgent(local, "ReMo", new FakeTimeProvider());
        var outcome = agent.Handle(StunMessage.TryParse(Check(username, password, true))!, new IPEndPoint(IPAddress.Loopback, 1), out var response);
        Assert.Equal(StunOutcome.Rejected, outcome);
        var error = StunMessage.TryParse(response!)!;
        Assert.Equal(StunMessage.BindingError, error.MessageType);
        var value = error.Value(error.Find(StunMessage.ErrorCode)!.Value);
        Assert.Equal(code, value[2] * 100 + value[3]);
        Assert.Null(agent.SelectedRemote);
    }

    private static byte[] Check(string username, string password, bool useCandidate)
    {
        var writer = new StunMessageWriter(StunMessage.BindingRequest, System.Security.Cryptography.RandomNumberGenerator.GetBytes(12))
            .AddString(StunMessage.Username, username)
            .Add(StunMessage.Priority, [0x6e, 0x00, 0x01, 0xff]);
        if (useCandidate)
        {
            writer.Add(StunMessage.UseCandidate, []);
        }
        return writer.AddMessageIntegrity(Encoding.UTF8.GetBytes(password)).AddFingerprint().ToArray();
    }
}
