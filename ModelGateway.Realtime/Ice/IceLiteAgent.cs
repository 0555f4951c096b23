using System.Net;
using System.Text;

namespace ModelGateway.Realtime.Ice;

/// <summary>What the agent made of one STUN datagram.</summary>
internal enum StunOutcome
{
    /// <summary>Not a Binding request for us (an indication, a response, another method): dropped.</summary>
    Ignored,
    /// <summary>Failed the checks (fingerprint, username, integrity): answered with an error or dropped.</summary>
    Rejected,
    /// <summary>A valid connectivity or consent check, answered with a success response.</summary>
    Accepted,
}

/// <summary>
/// The controlled, lite side of ICE (RFC 8445 §2.5, §7.3): we never send checks, we answer the peer's
/// Binding requests after checking USERNAME, MESSAGE-INTEGRITY (short-term credentials: our ice-pwd) and
/// FINGERPRINT. The first valid check selects the peer's address (its candidate may be peer-reflexive,
/// §7.3.1.3); a check carrying USE-CANDIDATE re-selects (§7.3.1.5). Every valid check from the selected
/// address refreshes consent (RFC 7675 §5.1).
/// </summary>
internal sealed class IceLiteAgent
{
    private readonly IceCredentials _local;
    private readonly string _expectedUsername;
    private readonly byte[] _key;
    private readonly TimeProvider _time;
    private readonly Lock _gate = new();
    private IPEndPoint? _selected;
    private long _lastConsent;

    public IceLiteAgent(IceCredentials local, string remoteUfrag, TimeProvider time)
    {
        _local = local;
        // RFC 8445 §7.2.2: USERNAME of a check = receiver's ufrag ":" sender's ufrag.
        _expectedUsername = local.Ufrag + ":" + remoteUfrag;
        _key = Encoding.UTF8.GetBytes(local.Password);
        _time = time;
        _lastConsent = time.GetTimestamp();
    }

    public IPEndPoint? SelectedRemote
    {
        get { lock (_gate) { return _selected; } }
    }

    /// <summary>Time since the last valid check from the selected address (or since creation).</summary>
    public TimeSpan SinceLastConsent
    {
        get { lock (_gate) { return _time.GetElapsedTime(_lastConsent); } }
    }

    public StunOutcome Handle(StunMessage message, IPEndPoint from, out byte[]? response)
    {
        response = null;
        if (message.MessageType != StunMessage.BindingRequest)
        {
            return StunOutcome.Ignored;
        }
        // RFC 8445 §7.3: checks carry FINGERPRINT; one that fails it is not STUN for us and is dropped silently.
        if (!message.VerifyFingerprint())
        {
            return StunOutcome.Rejected;
        }
        var username = message.GetString(StunMessage.Username);
        if (username is null || !message.Has(StunMessage.MessageIntegrity))
        {
            // RFC 8489 §9.1.3: missing credentials → 400.
            response = Error(message, 400, "Bad Request", withIntegrity: false);
            return StunOutcome.Rejected;
        }
        if (!string.Equals(username, _expectedUsername, StringComparison.Ordinal) || !message.VerifyMessageIntegrity(_key))
        {
            // RFC 8489 §9.1.3: unknown username or bad integrity → 401, without MESSAGE-INTEGRITY.
            response = Error(message, 401, "Unauthorized", withIntegrity: false);
            return StunOutcome.Rejected;
        }

        lock (_gate)
        {
            if (_selected is null || message.Has(StunMessage.UseCandidate))
            {
                _selected = from;
            }
            if (_selected.Equals(from))
            {
                _lastConsent = _time.GetTimestamp();
            }
        }

        response = new StunMessageWriter(StunMessage.BindingSuccess, message.TransactionId)
            .AddXorMappedAddress(from)
            .AddMessageIntegrity(_key)
            .AddFingerprint()
            .ToArray();
        return StunOutcome.Accepted;
    }

    private byte[] Error(StunMessage request, int code, string reason, bool withIntegrity)
    {
        var writer = new StunMessageWriter(StunMessage.BindingError, request.TransactionId).AddErrorCode(code, reason);
        if (withIntegrity)
        {
            writer.AddMessageIntegrity(_key);
        }
        return writer.AddFingerprint().ToArray();
    }

    public override string ToString() => $"ice-lite ufrag={_local.Ufrag}";
}
