using System.Security.Cryptography;
using Org.BouncyCastle.Tls;
using Org.BouncyCastle.Tls.Crypto;
using Org.BouncyCastle.Tls.Crypto.Impl.BC;
using BcHash = Org.BouncyCastle.Tls.HashAlgorithm;

namespace ModelGateway.Realtime.Dtls;

/// <summary>
/// The DTLS server of one session (RFC 8261 §3, RFC 8827 §6.5): DTLS 1.2 only, ECDHE-ECDSA suites,
/// a client certificate required and checked against the offer's sha-256 fingerprint.
/// </summary>
internal sealed class WebRtcDtlsServer(BcTlsCrypto crypto, DtlsCertificate certificate, byte[] expectedClientFingerprint, int handshakeTimeoutMillis)
    : DefaultTlsServer(crypto)
{
    private static readonly int[] CipherSuites =
    [
        CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        CipherSuite.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ];

    /// <summary>Set once the client's certificate matched the offer's fingerprint.</summary>
    public bool ClientAuthenticated { get; private set; }

    public short? AlertReceived { get; private set; }

    /// <summary>
    /// Chromium offers DTLS 1.3 too; BouncyCastle's default list would pick a version the rest of its
    /// DTLS server path rejects (protocol_version alert), so pin 1.2 (RFC 8827 §6.5 requires ≥ 1.2).
    /// </summary>
    protected override ProtocolVersion[] GetSupportedVersions() => ProtocolVersion.DTLSv12.Only();

    protected override int[] GetSupportedCipherSuites() => TlsUtilities.GetSupportedCipherSuites(Crypto, CipherSuites);

    public override int GetHandshakeTimeoutMillis() => handshakeTimeoutMillis;

    protected override TlsCredentialedSigner GetECDsaSignerCredentials()
    {
        var tlsCertificate = new BcTlsCertificate(crypto, certificate.Der);
        var chain = new Certificate([tlsCertificate]);
        return new BcDefaultTlsCredentialedSigner(
            new TlsCryptoParameters(m_context), crypto, certificate.PrivateKey, chain,
            new SignatureAndHashAlgorithm(BcHash.sha256, SignatureAlgorithm.ecdsa));
    }

    /// <summary>RFC 8827 §6.5: both sides present certificates; ask for the browser's.</summary>
    public override CertificateRequest GetCertificateRequest()
    {
        var algorithms = TlsUtilities.GetDefaultSupportedSignatureAlgorithms(m_context);
        return new CertificateRequest([ClientCertificateType.ecdsa_sign, ClientCertificateType.rsa_sign], algorithms, null);
    }

    /// <summary>RFC 8122 §5: the certificate must hash to the fingerprint the peer put in its offer.</summary>
    public override void NotifyClientCertificate(Certificate clientCertificate)
    {
        if (clientCertificate is null || clientCertificate.IsEmpty)
        {
            throw new TlsFatalAlert(AlertDescription.handshake_failure);
        }
        var digest = SHA256.HashData(clientCertificate.GetCertificateAt(0).GetEncoded());
        if (!CryptographicOperations.FixedTimeEquals(digest, expectedClientFingerprint))
        {
            throw new TlsFatalAlert(AlertDescription.bad_certificate);
        }
        ClientAuthenticated = true;
    }

    public override void NotifyAlertReceived(short alertLevel, short alertDescription)
    {
        AlertReceived = alertDescription;
        base.NotifyAlertReceived(alertLevel, alertDescription);
    }
}
