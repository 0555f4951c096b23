using System.Text;
using ModelGateway.Realtime.Sctp;

namespace ModelGateway.Realtime.DataChannels;

/// <summary>One data channel: an SCTP stream pair opened by the browser with DCEP (RFC 8832).</summary>
internal sealed class DataChannel(SctpAssociation association, ushort streamId, DcepOpen open)
{
    public ushort StreamId { get; } = streamId;
    public string Label { get; } = open.Label;
    public string Protocol { get; } = open.Protocol;
    public bool Unordered { get; } = open.Unordered;

    /// <summary>
    /// Sends one text message (PPID 51; an empty string is PPID 56 with one byte, RFC 8831 §6.6).
    /// Waits while more than <paramref name="highWaterMark"/> bytes are queued, like bufferedAmount in a browser.
    /// </summary>
    public async Task<bool> SendTextAsync(string text, int highWaterMark, CancellationToken cancellationToken)
    {
        await association.WaitForBufferBelowAsync(highWaterMark, cancellationToken).ConfigureAwait(false);
        return text.Length == 0
            ? association.Send(StreamId, Ppid.StringEmpty, new byte[1], Unordered)
            : association.Send(StreamId, Ppid.String, Encoding.UTF8.GetBytes(text), Unordered);
    }
}

/// <summary>
/// The DCEP side of the association: answers DATA_CHANNEL_OPEN with ACK on the same stream (§6) and
/// routes user messages to their channel. Only the browser opens channels (it is the DTLS client and
/// uses even stream ids, §6); we never open one.
/// </summary>
internal sealed class DataChannelHost(SctpAssociation association)
{
    private readonly Dictionary<ushort, DataChannel> _channels = [];

    public event Action<DataChannel>? ChannelOpened;

    /// <summary>A user message: the channel, whether it is text, and the payload (empty for PPIDs 56/57).</summary>
    public event Action<DataChannel, bool, byte[]>? MessageReceived;

    public int Count
    {
        get { lock (_channels) { return _channels.Count; } }
    }

    /// <summary>Called on the association's receive thread for each whole message.</summary>
    public void OnMessage(ReceivedMessage message)
    {
        DataChannel? channel;
        switch (message.Ppid)
        {
            case Ppid.Dcep:
                if (message.Data.Length > 0 && message.Data[0] == DcepOpen.MessageType && DcepOpen.Parse(message.Data) is { } open)
                {
                    channel = new DataChannel(association, message.StreamId, open);
                    lock (_channels)
                    {
                        _channels[message.StreamId] = channel;
                    }
                    // §6: the ACK goes on the same stream, ordered, before any user data of ours.
                    association.Send(message.StreamId, Ppid.Dcep, DcepOpen.Ack(), unordered: false);
                    ChannelOpened?.Invoke(channel);
                }
                return;
            case Ppid.String or Ppid.Binary or Ppid.StringEmpty or Ppid.BinaryEmpty:
                lock (_channels)
                {
                    _channels.TryGetValue(message.StreamId, out channel);
                }
                if (channel is not null)
                {
                    var empty = message.Ppid is Ppid.StringEmpty or Ppid.BinaryEmpty;
                    MessageReceived?.Invoke(channel, message.Ppid is Ppid.String or Ppid.StringEmpty, empty ? [] : message.Data);
                }
                return;
        }
    }
}
