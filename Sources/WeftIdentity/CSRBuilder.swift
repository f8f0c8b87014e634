import Crypto
import X509

/// Builds the certificate signing request a proxy sends to the mesh CA.
public enum CSRBuilder {
    /// A PEM CSR (`CERTIFICATE REQUEST`) for `identity`, signed with `key`: empty subject, and an extension
    /// request holding one URI SAN, the SPIFFE ID. ``CertificateAuthority/issue(csrPEM:for:now:lifetime:)`` accepts
    /// it when `identity` is the one the caller proves.
    public static func make(identity: SpiffeID, key: P256.Signing.PrivateKey) throws -> String {
        let extensions = try Certificate.Extensions {
            SubjectAlternativeNames([.uniformResourceIdentifier(identity.description)])
        }
        let attributes = try CertificateSigningRequest.Attributes([
            .init(ExtensionRequest(extensions: extensions))
        ])
        let csr = try CertificateSigningRequest(
            version: .v1,
            subject: DistinguishedName(),
            privateKey: Certificate.PrivateKey(key),
            attributes: attributes,
            signatureAlgorithm: .ecdsaWithSHA256
        )
        return try csr.serializeAsPEM().pemString + "\n"
    }
}
