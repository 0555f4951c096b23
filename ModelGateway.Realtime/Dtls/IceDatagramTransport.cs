using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Org.BouncyCastle.Tls;

namespace ModelGateway.Realtime.Dtls;

/// <summary>
/// BouncyCastle's blocking DTLS engine over the session's UDP socket: the socket's receive loop
/// pushes DTLS datagrams (first byte 20..63, RFC 7983 §7) into a queue; sends go to the address ICE selected.
/// </summary>
internal sealed class IceDatagramTransport(Socket socket, Func<IPEndPoint?> remote) : DatagramTransport
{
    /// <summary>Datagrams beyond this many queued are dropped, as a full socket buffer would.</summary>
    private const int MaxQueued = 1024;

    /// <summary>
    /// What one UDP datagram may carry here: the 1200 bytes every WebRTC path is assumed to pass
    /// (RFC 8831 §5 recommends not relying on more without PMTU discovery), minus room for TURN's
    /// ChannelData / Send indication framing (RFC 8656 §11.4, §12).
    /// </summary>
    public const int DatagramLimit = 1200;

    private readonly BlockingCollection<byte[]> _inbound = new(new ConcurrentQueue<byte[]>(), MaxQueued);
    private volatile bool _closed;

    public void Enqueue(byte[] datagram)
    {
        if (!_closed)
        {
            _inbound.TryAdd(datagram);
        }
    }

    public int GetReceiveLimit() => 1500;

    public int GetSendLimit() => DatagramLimit;

    public int Receive(byte[] buf, int off, int len, int waitMillis) => Receive(buf.AsSpan(off, len), waitMillis);

    public int Receive(Span<byte> buffer, int waitMillis)
    {
        if (_closed)
        {
            throw new IOException("The transport is closed.");
        }
        byte[]? datagram;
        try
        {
            if (!_inbound.TryTake(out datagram, waitMillis == 0 ? Timeout.Infinite : waitMillis))
            {
                // BouncyCastle reads a negative count as "nothing arrived within waitMillis".
                return _closed ? throw new IOException("The transport is closed.") : -1;
            }
        }
        catch (ObjectDisposedException)
        {
            throw new IOException("The transport is closed.");
        }
        var n = Math.Min(datagram.Length, buffer.Length);
        datagram.AsSpan(0, n).CopyTo(buffer);
        return n;
    }

    public void Send(byte[] buf, int off, int len) => Send(buf.AsSpan(off, len));

    public void Send(ReadOnlySpan<byte> buffer)
    {
        if (_closed || remote() is not { } to)
        {
            return;
        }
        try
        {
            socket.SendTo(buffer, SocketFlags.None, to);
        }
        catch (SocketException)
        {
            // UDP: a send that fails (ICMP unreachable, buffer full) is a lost datagram; SCTP retransmits.
        }
        catch (ObjectDisposedException)
        {
        }
    }

    public void Close()
    {
        _closed = true;
        _inbound.CompleteAdding();
    }
}
