using ModelGateway.Realtime.Signalling;
using Org.BouncyCastle.Asn1.Sec;
using Org.BouncyCastle.Asn1.X509;
using Org.BouncyCastle.Crypto;
using Org.BouncyCastle.Crypto.Generators;
using Org.BouncyCastle.Crypto.Operators;
using Org.BouncyCastle.Crypto.Parameters;
using Org.BouncyCastle.Math;
using Org.BouncyCastle.Security;
using Org.BouncyCastle.X509;

namespace ModelGateway.Realtime.Dtls;

/// <summary>
/// The server's self-signed ECDSA P-256 certificate. WebRTC authenticates it by the sha-256
/// fingerprint carried in the (authenticated, HTTPS) answer (RFC 8827 §6.5, RFC 8122 §5), so no CA is
/// involved. One certificate per process: generating a key per session costs CPU and adds nothing,
/// since each session's keys are fresh (ECDHE) anyway.
/// </summary>
internal sealed class DtlsCertificate
{
    private DtlsCertificate(AsymmetricKeyParameter privateKey, X509CertificateStructure certificate, byte[] der)
    {
        PrivateKey = privateKey;
        Certificate = certificate;
        Der = der;
        Fingerprint = SdpAnswer.FormatFingerprint(System.Security.Cryptography.SHA256.HashData(der));
    }

    public AsymmetricKeyParameter PrivateKey { get; }
    public X509CertificateStructure Certificate { get; }
    public byte[] Der { get; }

    /// <summary>The sha-256 fingerprint as written in SDP: upper-case hex pairs separated by colons.</summary>
    public string Fingerprint { get; }

    public static DtlsCertificate Create(TimeProvider time)
    {
        var random = new SecureRandom();
        var generator = new ECKeyPairGenerator();
        generator.Init(new ECKeyGenerationParameters(SecObjectIdentifiers.SecP256r1, random));
        var keys = generator.GenerateKeyPair();

        var now = time.GetUtcNow().UtcDateTime;
        var name = new X509Name("CN=ModelGateway.Realtime");
        var builder = new X509V3CertificateGenerator();
        builder.SetSerialNumber(new BigInteger(64, random).Add(BigInteger.One));
        builder.SetIssuerDN(name);
        builder.SetSubjectDN(name);
        builder.SetNotBefore(now.AddDays(-1));
        builder.SetNotAfter(now.AddDays(30));
        builder.SetPublicKey(keys.Public);
        var certificate = builder.Generate(new Asn1SignatureFactory("SHA256WITHECDSA", keys.Private, random));
        return new DtlsCertificate(keys.Private, certificate.CertificateStructure, certificate.GetEncoded());
    }
}
