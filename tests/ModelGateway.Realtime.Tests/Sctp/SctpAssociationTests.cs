using System.Buffers.Binary;
using Microsoft.Extensions.Time.Testing;
using ModelGateway.Realtime.DataChannels;
using ModelGateway.Realtime.Sctp;

namespace ModelGateway.Realtime.Tests.Sctp;

/// <summary>Drives our (passive) association with hand-made packets from a pretend browser.</summary>
public sealed class SctpAssociationTests : IDisposable
{
    private const uint PeerTag = 0xA1B2C3D4;
    private const uint PeerTsn = 1000;

    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private readonly List<SctpPacket> _sent = [];
    private readonly List<ReceivedMessage> _received = [];
    private readonly SctpAssociation _association;
    private uint _localTag;
    private uint _localTsn;

    public SctpAssociationTests()
    {
        _association = new SctpAssociation(
            bytes => _sent.Add(SctpPacket.TryParse(bytes) ?? throw new InvalidOperationException("we sent a bad checksum")),
            new StateCookieSigner(_time, TimeSpan.FromSeconds(60)), _time,
            new SctpSettings { MaxPacketSize = 1200, TimerResolution = TimeSpan.FromMilliseconds(10) });
        _association.MessageReceived += _received.Add;
    }

    public void Dispose() => _association.Dispose();

    private void FromPeer(uint tag, params SctpChunk[] chunks) => _association.HandlePacket(new SctpPacket(5000, 5000, tag, chunks).Encode());

    private SctpChunk Last(byte type) => _sent.SelectMany(p => p.Chunks).Last(c => c.Type == type);

    private void Establish()
    {
        var init = new InitChunk(PeerTag, 131072, 65535, 65535, PeerTsn, [(0xC000, ReadOnlyMemory<byte>.Empty), (0x8008, new byte[] { 0x82, 0xC0 })]);
        FromPeer(0, init.Encode(ChunkType.Init));
        Assert.Equal(SctpState.Closed, _association.State); // RFC 4960 §5.1.3: no state before COOKIE ECHO
        var initAckPacket = _sent.Single();
        Assert.Equal(PeerTag, initAckPacket.VerificationTag);
        var initAck = InitChunk.Decode(initAckPacket.Chunks.Single(c => c.Type == ChunkType.InitAck))!;
        _localTag = initAck.InitiateTag;
        _localTsn = initAck.InitialTsn;
        var cookie = initAck.Parameters.Single(p => p.Type == InitChunk.StateCookieParameter).Value;
        // Forward-TSN-Supported (0xC000) comes back as unrecognized, so the browser keeps channels reliable.
        var unrecognized = initAck.Parameters.Single(p => p.Type == InitChunk.UnrecognizedParameter).Value;
        Assert.Equal(0xC000, BinaryPrimitives.ReadUInt16BigEndian(unrecognized.Span));

        FromPeer(_localTag, new SctpChunk(ChunkType.CookieEcho, 0, cookie));
        Assert.Equal(SctpState.Established, _association.State);
        Assert.Equal(ChunkType.CookieAck, _sent[^1].Chunks[0].Type);
        _sent.Clear();
    }

    [Fact]
    public void Handshake_then_data_is_delivered_and_acknowledged()
    {
        Establish();
        var open = new DcepOpen(0, 0, 0, "chat", "").Encode();
        FromPeer(_localTag, new DataChunk(PeerTsn, 0, 0, Ppid.Dcep, open, true, true, false).Encode());
        var message = Assert.Single(_received);
        Assert.Equal(Ppid.Dcep, message.Ppid);
        var sack = SackChunk.Decode(Last(ChunkType.Sack))!;
        Assert.Equal(PeerTsn, sack.CumulativeTsnAck);
        Assert.Empty(sack.GapBlocks);
    }

    [Fact]
    public void A_forged_or_stale_cookie_is_ignored()
    {
        var init = new InitChunk(PeerTag, 131072, 16, 16, PeerTsn, []);
        FromPeer(0, init.Encode(ChunkType.Init));
        var initAck = InitChunk.Decode(_sent.Single().Chunks[0])!;
        var cookie = initAck.Parameters.Single(p => p.Type == InitChunk.StateCookieParameter).Value.ToArray();
        var forged = (byte[])cookie.Clone();
        forged[5] ^= 0xFF;
        FromPeer(initAck.InitiateTag, new SctpChunk(ChunkType.CookieEcho, 0, forged));
        Assert.Equal(SctpState.Closed, _association.State);
        _time.Advance(TimeSpan.FromSeconds(61));
        FromPeer(initAck.InitiateTag, new SctpChunk(ChunkType.CookieEcho, 0, cookie));
        Assert.Equal(SctpState.Closed, _association.State);
    }

    [Fact]
    public void Large_messages_are_fragmented_within_the_congestion_window_and_sent_as_sacks_arrive()
    {
        Establish();
        var payload = Enumerable.Range(0, 70_000).Select(i => (byte)i).ToArray();
        Assert.True(_association.Send(2, Ppid.Binary, payload, unordered: false));
        var first = _sent.SelectMany(p => p.Chunks).Where(c => c.Type == ChunkType.Data).Select(c => DataChunk.Decode(c)!).ToList();
        // RFC 4960 §7.2.1: initial cwnd = min(4*MTU, max(2*MTU, 4380)) = 4380 bytes → only a few chunks go at first.
        Assert.InRange(first.Sum(c => c.UserData.Length), 1, 4380 + 1200);
        Assert.True(first[0].Beginning);
        Assert.All(first, c => Assert.Equal(_localTsn + (uint)first.IndexOf(c), c.Tsn));

        // Acknowledge everything as it comes, as a browser would, until the message is complete.
        var all = new List<DataChunk>(first);
        var rounds = 0;
        while (!all[^1].Ending && rounds++ < 200)
        {
            _sent.Clear();
            FromPeer(_localTag, new SackChunk(all[^1].Tsn, 1 << 20, [], []).Encode());
            all.AddRange(_sent.SelectMany(p => p.Chunks).Where(c => c.Type == ChunkType.Data).Select(c => DataChunk.Decode(c)!));
        }
        Assert.True(all[^1].Ending);
        Assert.Equal(payload, all.SelectMany(c => c.UserData.ToArray()).ToArray());
        Assert.True(_association.CongestionWindow > 4380, "slow start grew the window");
        Assert.All(_sent, p => Assert.True(p.Encode().Length <= 1200));
    }

    [Fact]
    public void T3_rtx_expiry_retransmits_the_earliest_chunk_and_collapses_the_window()
    {
        Establish();
        _association.Send(2, Ppid.String, new byte[3000], unordered: false);
        var sent = _sent.SelectMany(p => p.Chunks).Where(c => c.Type == ChunkType.Data).Select(c => DataChunk.Decode(c)!).ToList();
        _sent.Clear();

        _time.Advance(TimeSpan.FromMilliseconds(900));
        Assert.Empty(_sent);
        _time.Advance(TimeSpan.FromMilliseconds(200)); // RTO.Initial = 1 s
        var retransmitted = _sent.SelectMany(p => p.Chunks).Where(c => c.Type == ChunkType.Data).Select(c => DataChunk.Decode(c)!).ToList();
        Assert.Equal(sent[0].Tsn, retransmitted[0].Tsn);
        Assert.Equal(1200, _association.CongestionWindow); // §6.3.3 E1: cwnd = 1 MTU

        // The retransmission's next expiry comes after a doubled RTO (§6.3.3 E2).
        _sent.Clear();
        _time.Advance(TimeSpan.FromMilliseconds(1500));
        Assert.Empty(_sent);
        _time.Advance(TimeSpan.FromMilliseconds(600));
        Assert.NotEmpty(_sent);
    }

    [Fact]
    public void Gap_reports_trigger_fast_retransmit_of_the_missing_chunk()
    {
        Establish();
        for (var i = 0; i < 4; i++)
        {
            _association.Send(2, Ppid.String, new byte[800], unordered: false);
        }
        var tsns = _sent.SelectMany(p => p.Chunks).Where(c => c.Type == ChunkType.Data).Select(c => DataChunk.Decode(c)!.Tsn).ToList();
        Assert.True(tsns.Count >= 4);
        _sent.Clear();
        // The peer lost the first chunk and holds the next three: three SACKs with a gap → fast retransmit (§7.2.4).
        var cumulative = tsns[0] - 1;
        for (var i = 1; i <= 3; i++)
        {
            FromPeer(_localTag, new SackChunk(cumulative, 1 << 20, [new GapBlock(2, (ushort)(1 + i))], []).Encode());
        }
        var resent = _sent.SelectMany(p => p.Chunks).Where(c => c.Type == ChunkType.Data).Select(c => DataChunk.Decode(c)!.Tsn).ToList();
        Assert.Contains(tsns[0], resent);
    }

    [Fact]
    public void Heartbeat_is_echoed_and_abort_closes()
    {
        Establish();
        var info = new byte[] { 0, 1, 0, 8, 1, 2, 3, 4 };
        FromPeer(_localTag, new SctpChunk(ChunkType.Heartbeat, 0, info));
        Assert.Equal(info, Last(ChunkType.HeartbeatAck).Value.ToArray());

        string? reason = null;
        _association.Closed += r => reason = r;
        FromPeer(_localTag, new SctpChunk(ChunkType.Abort, 0, ReadOnlyMemory<byte>.Empty));
        Assert.Equal(SctpState.Terminated, _association.State);
        Assert.Equal("peer sent ABORT", reason);
    }

    [Fact]
    public void Shutdown_is_acknowledged()
    {
        Establish();
        var cumulative = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(cumulative, _localTsn - 1);
        FromPeer(_localTag, new SctpChunk(ChunkType.Shutdown, 0, cumulative));
        Assert.Equal(ChunkType.ShutdownAck, _sent[^1].Chunks[^1].Type);
        FromPeer(_localTag, new SctpChunk(ChunkType.ShutdownComplete, 0, ReadOnlyMemory<byte>.Empty));
        Assert.Equal(SctpState.Terminated, _association.State);
    }

    [Fact]
    public void Packets_with_the_wrong_verification_tag_are_dropped()
    {
        Establish();
        FromPeer(_localTag ^ 1, new DataChunk(PeerTsn, 0, 0, Ppid.String, new byte[] { 1 }, true, true, false).Encode());
        Assert.Empty(_received);
        Assert.Empty(_sent);
    }
}
