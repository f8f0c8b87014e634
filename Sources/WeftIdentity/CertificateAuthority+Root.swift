import Crypto
import X509

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension CertificateAuthority {
    /// The common name of roots Weft generates.
    public static let generatedRootCommonName = "Weft mesh CA"

    /// Generates a self-signed root for first start, as the contents of the Secret `weft-system/weft-ca`.
    ///
    /// The root is ECDSA P-256 and self-signed, with subject `O=<trust domain>, CN=Weft mesh CA`,
    /// BasicConstraints `CA:TRUE` (critical), KeyUsage `keyCertSign, cRLSign` (critical) and a
    /// SubjectKeyIdentifier; it is valid from `now - 1 minute` to `now + validity`. The returned secret's
    /// `tls.crt` and `ca.crt` both hold the root; `tls.key` holds the PKCS#8 key.
    ///
    /// - Parameters:
    ///   - trustDomain: the mesh's trust domain (written as the subject's organisation).
    ///   - now: the time of generation.
    ///   - validity: seconds from `now` to `notAfter`; 10 years by default.
    ///   - key: the root's key; a fresh one by default (inject one for deterministic tests).
    ///   - serialNumbers: where the root's serial number comes from.
    public static func generateRoot(
        trustDomain: TrustDomain,
        now: Date,
        validity: TimeInterval = CertificateValidity.defaultRootLifetime,
        key: P256.Signing.PrivateKey = P256.Signing.PrivateKey(),
        serialNumbers: SerialNumberGenerator
    ) throws -> MeshCASecret {
        guard validity > 0 else {
            throw IdentityError(.invalidArgument, "the root's validity must be positive (got \(validity) s)")
        }
        let signingKey = Certificate.PrivateKey(key)
        let subject = try DistinguishedName {
            OrganizationName(trustDomain.name)
            CommonName(generatedRootCommonName)
        }
        let window = CertificateValidity(lifetime: validity).window(at: now)
        let root = try Certificate(
            version: .v3,
            serialNumber: serialNumbers.next(),
            publicKey: signingKey.publicKey,
            notValidBefore: window.notBefore,
            notValidAfter: window.notAfter,
            issuer: subject,
            subject: subject,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: signingKey.publicKey)
            },
            issuerPrivateKey: signingKey
        )
        let rootPEM = try PEM.encode(root)
        return MeshCASecret(certificatePEM: rootPEM, privateKeyPEM: key.pemRepresentation, trustRootsPEM: rootPEM)
    }
}
