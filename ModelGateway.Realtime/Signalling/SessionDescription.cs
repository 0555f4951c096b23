using System.Globalization;
using System.Net;
using System.Text;

namespace ModelGateway.Realtime.Signalling;

/// <summary>Why an offer cannot be answered; the message is shown to the client.</summary>
internal sealed class SdpException(string message) : Exception(message);

/// <summary>One m= section of an offer, as far as the answer needs it.</summary>
internal sealed record MediaSection(string Media, string Protocol, string Formats, string? Mid);

/// <summary>
/// What we take from a WebRTC offer (RFC 8866 syntax, RFC 8829 JSEP, RFC 8841 data channel m= line):
/// the peer's ICE credentials and DTLS fingerprint, the data-channel section, its SCTP port and
/// maximum message size. Everything else is ignored.
/// </summary>
internal sealed record SdpOffer(
    IReadOnlyList<MediaSection> Sections,
    int DataSectionIndex,
    string IceUfrag,
    string IcePassword,
    byte[] Fingerprint,
    int SctpPort,
    long MaxMessageSize)
{
    /// <summary>RFC 8841 §6.1: a missing a=max-message-size means 64 KiB.</summary>
    public const long DefaultMaxMessageSize = 65536;

    public const int MaxSdpLength = 64 * 1024;

    public MediaSection DataSection => Sections[DataSectionIndex];

    public static SdpOffer Parse(string? sdp)
    {
        if (string.IsNullOrWhiteSpace(sdp))
        {
            throw new SdpException("The offer has no SDP.");
        }
        if (sdp.Length > MaxSdpLength)
        {
            throw new SdpException("The SDP is too large.");
        }
        var lines = sdp.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        // RFC 8866 §5: v=0 comes first.
        if (lines.Length == 0 || lines[0] != "v=0")
        {
            throw new SdpException("The SDP must start with v=0.");
        }

        var sections = new List<MediaSection>();
        var sectionAttributes = new List<List<string>>();
        var sessionAttributes = new List<string>();
        foreach (var line in lines)
        {
            if (line.Length < 2 || line[1] != '=')
            {
                throw new SdpException($"Malformed SDP line: '{Truncate(line)}'.");
            }
            if (line.StartsWith("m=", StringComparison.Ordinal))
            {
                // m=<media> <port> <proto> <fmt> ...
                var parts = line[2..].Split(' ', 4, StringSplitOptions.RemoveEmptyEntries);
                if (parts.Length < 4)
                {
                    throw new SdpException($"Malformed m= line: '{Truncate(line)}'.");
                }
                sections.Add(new MediaSection(parts[0], parts[2], parts[3], null));
                sectionAttributes.Add([]);
            }
            else if (line.StartsWith("a=", StringComparison.Ordinal))
            {
                (sections.Count == 0 ? sessionAttributes : sectionAttributes[^1]).Add(line[2..]);
            }
        }
        for (var i = 0; i < sections.Count; i++)
        {
            sections[i] = sections[i] with { Mid = Attribute(sectionAttributes[i], "mid") };
        }

        // RFC 8841 §4.1: m=application <port> UDP/DTLS/SCTP (or TCP/DTLS/SCTP) webrtc-datachannel.
        var dataIndex = sections.FindIndex(s =>
            s.Media == "application" &&
            s.Protocol.EndsWith("DTLS/SCTP", StringComparison.Ordinal) &&
            s.Formats.Split(' ').Contains("webrtc-datachannel"));
        if (dataIndex < 0)
        {
            throw new SdpException("The offer has no data-channel section (m=application ... UDP/DTLS/SCTP webrtc-datachannel).");
        }
        var media = sectionAttributes[dataIndex];

        // RFC 8839 §5.4 / RFC 8122 §5: ICE credentials and fingerprint may sit at session or media level.
        var ufrag = Attribute(media, "ice-ufrag") ?? Attribute(sessionAttributes, "ice-ufrag")
            ?? throw new SdpException("The offer has no a=ice-ufrag.");
        var pwd = Attribute(media, "ice-pwd") ?? Attribute(sessionAttributes, "ice-pwd")
            ?? throw new SdpException("The offer has no a=ice-pwd.");
        if (ufrag.Length is < 4 or > 256 || pwd.Length is < 22 or > 256)
        {
            throw new SdpException("The offer's ICE credentials have the wrong length.");
        }

        var fingerprints = All(media, "fingerprint").Concat(All(sessionAttributes, "fingerprint"));
        byte[]? fingerprint = null;
        foreach (var value in fingerprints)
        {
            var parts = value.Split(' ', 2, StringSplitOptions.TrimEntries);
            if (parts.Length == 2 && parts[0].Equals("sha-256", StringComparison.OrdinalIgnoreCase))
            {
                fingerprint = ParseFingerprint(parts[1]);
                break;
            }
        }
        if (fingerprint is null)
        {
            throw new SdpException("The offer has no a=fingerprint:sha-256.");
        }

        // RFC 8842 §5.2: the offerer says actpass (or active); we then answer passive and are the DTLS server.
        var setup = Attribute(media, "setup") ?? Attribute(sessionAttributes, "setup") ?? "actpass";
        if (setup is not ("actpass" or "active"))
        {
            throw new SdpException($"Unsupported a=setup:{Truncate(setup)}; the gateway is the DTLS server (offer actpass or active).");
        }

        var sctpPort = 5000;
        if (Attribute(media, "sctp-port") is { } portText &&
            (!int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out sctpPort) || sctpPort is < 1 or > 65535))
        {
            throw new SdpException("Invalid a=sctp-port.");
        }
        var maxMessageSize = DefaultMaxMessageSize;
        if (Attribute(media, "max-message-size") is { } sizeText &&
            !long.TryParse(sizeText, NumberStyles.None, CultureInfo.InvariantCulture, out maxMessageSize))
        {
            throw new SdpException("Invalid a=max-message-size.");
        }
        return new SdpOffer(sections, dataIndex, ufrag, pwd, fingerprint, sctpPort, maxMessageSize);
    }

    internal static byte[] ParseFingerprint(string hex)
    {
        var parts = hex.Split(':');
        if (parts.Length != 32)
        {
            throw new SdpException("The sha-256 fingerprint must have 32 bytes.");
        }
        var bytes = new byte[32];
        for (var i = 0; i < 32; i++)
        {
            if (!byte.TryParse(parts[i], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out bytes[i]) || parts[i].Length != 2)
            {
                throw new SdpException("The fingerprint is not hexadecimal.");
            }
        }
        return bytes;
    }

    private static string? Attribute(List<string> attributes, string name)
    {
        foreach (var a in attributes)
        {
            if (a.Length > name.Length && a[name.Length] == ':' && a.StartsWith(name, StringComparison.Ordinal))
            {
                return a[(name.Length + 1)..].Trim();
            }
        }
        return null;
    }

    private static IEnumerable<string> All(List<string> attributes, string name)
    {
        foreach (var a in attributes)
        {
            if (a.Length > name.Length && a[name.Length] == ':' && a.StartsWith(name, StringComparison.Ordinal))
            {
                yield return a[(name.Length + 1)..].Trim();
            }
        }
    }

    private static string Truncate(string s) => s.Length <= 40 ? s : s[..40] + "…";
}

/// <summary>Our side of the session: what goes into the answer.</summary>
internal sealed record SdpAnswerParameters(
    string IceUfrag,
    string IcePassword,
    string Fingerprint,
    IReadOnlyList<IPEndPoint> Candidates,
    long MaxMessageSize);

internal static class SdpAnswer
{
    /// <summary>
    /// Builds the answer (RFC 8829 §5.3): one m= line per offered section in the same order; sections
    /// other than the data channel are rejected with port 0 (RFC 8829 §5.3.1, RFC 3264 §6).
    /// </summary>
    public static string Create(SdpOffer offer, SdpAnswerParameters ours)
    {
        var sb = new StringBuilder(1024);
        var sessionId = Random.Shared.NextInt64(1, long.MaxValue);
        sb.Append("v=0\r\n");
        sb.Append(CultureInfo.InvariantCulture, $"o=- {sessionId} 2 IN IP4 127.0.0.1\r\n");
        sb.Append("s=-\r\nt=0 0\r\n");
        var data = offer.DataSection;
        if (data.Mid is not null)
        {
            sb.Append(CultureInfo.InvariantCulture, $"a=group:BUNDLE {data.Mid}\r\n");
        }
        // RFC 8839 §5.3: ice-lite is a session-level attribute.
        sb.Append("a=ice-lite\r\n");
        for (var i = 0; i < offer.Sections.Count; i++)
        {
            var section = offer.Sections[i];
            if (i != offer.DataSectionIndex)
            {
                sb.Append(CultureInfo.InvariantCulture, $"m={section.Media} 0 {section.Protocol} {section.Formats}\r\n");
                sb.Append("c=IN IP4 0.0.0.0\r\n");
                if (section.Mid is not null)
                {
                    sb.Append(CultureInfo.InvariantCulture, $"a=mid:{section.Mid}\r\n");
                }
                sb.Append("a=inactive\r\n");
                continue;
            }
            var first = ours.Candidates[0];
            sb.Append(CultureInfo.InvariantCulture, $"m=application {first.Port} UDP/DTLS/SCTP webrtc-datachannel\r\n");
            sb.Append(CultureInfo.InvariantCulture, $"c=IN {(first.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? "IP6" : "IP4")} {first.Address}\r\n");
            if (section.Mid is not null)
            {
                sb.Append(CultureInfo.InvariantCulture, $"a=mid:{section.Mid}\r\n");
            }
            sb.Append(CultureInfo.InvariantCulture, $"a=ice-ufrag:{ours.IceUfrag}\r\n");
            sb.Append(CultureInfo.InvariantCulture, $"a=ice-pwd:{ours.IcePassword}\r\n");
            sb.Append(CultureInfo.InvariantCulture, $"a=fingerprint:sha-256 {ours.Fingerprint}\r\n");
            // RFC 8842 §5.2: answering passive makes the browser the DTLS client.
            sb.Append("a=setup:passive\r\n");
            sb.Append(CultureInfo.InvariantCulture, $"a=sctp-port:{offer.SctpPort}\r\n");
            sb.Append(CultureInfo.InvariantCulture, $"a=max-message-size:{ours.MaxMessageSize}\r\n");
            var foundation = 1;
            foreach (var candidate in ours.Candidates)
            {
                // RFC 8839 §5.1 candidate-attribute; RFC 8445 §5.1.2.1 priority for a host candidate:
                // (2^24)*126 + (2^8)*local preference + (256 - component id).
                var priority = (126u << 24) + ((uint)(65535 - foundation) << 8) + 255u;
                sb.Append(CultureInfo.InvariantCulture,
                    $"a=candidate:{foundation} 1 udp {priority} {candidate.Address} {candidate.Port} typ host\r\n");
                foundation++;
            }
            sb.Append("a=end-of-candidates\r\n");
        }
        return sb.ToString();
    }

    public static string FormatFingerprint(ReadOnlySpan<byte> digest) => Convert.ToHexString(digest) switch
    {
        var hex => string.Join(':', Enumerable.Range(0, digest.Length).Select(i => hex.Substring(i * 2, 2))),
    };
}
