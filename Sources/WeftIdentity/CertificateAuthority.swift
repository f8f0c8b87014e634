import Crypto
import X509

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The mesh CA: a signing certificate and key (a root, or an intermediate with its chain up to a root) that
/// issues X.509-SVIDs for workload identities of one trust domain.
///
/// A value type and pure: every operation takes the time (`now`) as an argument, and serial numbers come from
/// the injected ``SerialNumberGenerator``. Create it from the Secret `weft-system/weft-ca`
/// (``init(secret:trustDomain:serialNumbers:)``), from PEM texts, or generate a root on first start with
/// ``generateRoot(trustDomain:now:validity:key:serialNumbers:)``. Issue with
/// ``issue(csrPEM:for:now:lifetime:)``.
public struct CertificateAuthority: Sendable {
    /// The trust domain this CA issues identities for.
    public let trustDomain: TrustDomain
    /// The certificate that signs workload certificates (a root or an intermediate).
    public let certificate: Certificate
    /// The intermediates between ``certificate`` and the root, ``certificate``'s issuer first; empty when
    /// ``certificate`` is the root or is signed by a root directly.
    public let intermediates: [Certificate]
    /// The self-signed root ``certificate`` chains to (``certificate`` itself when it is the root).
    public let root: Certificate
    /// The roots that workloads trust: the root this CA chains to, plus any other root supplied (`ca.crt`).
    public let trustBundle: TrustBundle
    /// Where serial numbers come from.
    public var serialNumbers: SerialNumberGenerator
    let privateKey: Certificate.PrivateKey

    /// A CA from PEM texts.
    ///
    /// - Parameters:
    ///   - certificatePEM: the signing certificate, optionally followed by its intermediates (and the root), as in
    ///     `tls.crt`.
    ///   - privateKeyPEM: the signing certificate's key (PKCS#8, SEC1 or PKCS#1).
    ///   - chainPEM: further certificates: intermediates and the root(s), as in `ca.crt`. Self-signed ones are
    ///     trust roots.
    ///   - trustDomain: the trust domain the CA issues for.
    ///   - serialNumbers: where serial numbers come from (``SerialNumberGenerator/random`` in production).
    /// - Throws: `invalidEncoding` for unreadable PEM, `invalidCertificateAuthority` when the certificate is not a
    ///   CA, the key does not match it, or the chain does not reach a self-signed root.
    public init(
        certificatePEM: String,
        privateKeyPEM: String,
        chainPEM: String? = nil,
        trustDomain: TrustDomain,
        serialNumbers: SerialNumberGenerator
    ) throws {
        let supplied = try PEM.certificates(certificatePEM, what: "the CA certificate")
        let extra = try chainPEM.map { try PEM.certificates($0, what: "the CA chain") } ?? []
        let key: Certificate.PrivateKey
        do {
            key = try Certificate.PrivateKey(pemEncoded: privateKeyPEM)
        } catch {
            throw IdentityError(.invalidEncoding, "the CA key cannot be read: \(error)")
        }
        try self.init(
            certificate: supplied[0],
            privateKey: key,
            chain: Array(supplied.dropFirst()) + extra,
            trustDomain: trustDomain,
            serialNumbers: serialNumbers
        )
    }

    /// A CA from the Secret `weft-system/weft-ca` (see ``MeshCASecret`` for its layout).
    public init(secret: MeshCASecret, trustDomain: TrustDomain, serialNumbers: SerialNumberGenerator) throws {
        try self.init(
            certificatePEM: secret.certificatePEM,
            privateKeyPEM: secret.privateKeyPEM,
            chainPEM: secret.trustRootsPEM,
            trustDomain: trustDomain,
            serialNumbers: serialNumbers
        )
    }

    /// A CA from decoded values; `chain` holds intermediates and roots in any order.
    /// - Throws: `invalidCertificateAuthority` as the PEM initialiser does.
    public init(
        certificate: Certificate,
        privateKey: Certificate.PrivateKey,
        chain: [Certificate] = [],
        trustDomain: TrustDomain,
        serialNumbers: SerialNumberGenerator
    ) throws {
        guard certificate.isCertificateAuthority else {
            throw IdentityError(
                .invalidCertificateAuthority,
                "the CA certificate \(certificate.subject) is not a CA (BasicConstraints CA:TRUE is missing)"
            )
        }
        if let usage = try? certificate.extensions.keyUsage, !usage.keyCertSign {
            throw IdentityError(
                .invalidCertificateAuthority,
                "the CA certificate \(certificate.subject) may not sign certificates (KeyUsage lacks keyCertSign)"
            )
        }
        guard privateKey.publicKey == certificate.publicKey else {
            throw IdentityError(
                .invalidCertificateAuthority,
                "the CA key does not belong to the CA certificate \(certificate.subject)"
            )
        }
        let path = try Self.pathToRoot(from: certificate, through: chain)
        let otherRoots = chain.filter { $0.isSelfSigned && $0.isCertificateAuthority && $0 != path.root }
        self.trustDomain = trustDomain
        self.certificate = certificate
        self.intermediates = path.intermediates
        self.root = path.root
        self.trustBundle = TrustBundle(validatedTrustDomain: trustDomain, roots: [path.root] + otherRoots)
        self.privateKey = privateKey
        self.serialNumbers = serialNumbers
    }

    /// The signing certificate and intermediates (not the root), as a TLS peer sends them after its leaf.
    public var chainBelowRoot: [Certificate] {
        certificate.isSelfSigned ? intermediates : [certificate] + intermediates
    }

    /// The signing certificate as PEM.
    public var certificatePEM: String {
        get throws { try PEM.encode(certificate) }
    }

    /// Follows issuers from `certificate` through `chain` to a self-signed root.
    static func pathToRoot(
        from certificate: Certificate,
        through chain: [Certificate]
    ) throws -> (intermediates: [Certificate], root: Certificate) {
        var intermediates: [Certificate] = []
        var current = certificate
        while !current.isSelfSigned {
            guard
                let issuer = chain.first(where: { current.isIssued(by: $0) && $0 != current }),
                !intermediates.contains(issuer), issuer != certificate
            else {
                throw IdentityError(
                    .invalidCertificateAuthority,
                    "the CA chain does not reach a self-signed root: no certificate of the chain issued "
                        + "\(current.subject) (issuer \(current.issuer)); add it to \(MeshCASecret.certificateKey) "
                        + "or \(MeshCASecret.trustRootsKey)"
                )
            }
            guard issuer.isCertificateAuthority else {
                throw IdentityError(
                    .invalidCertificateAuthority,
                    "the CA chain's certificate \(issuer.subject) is not a CA (BasicConstraints CA:TRUE is missing)"
                )
            }
            if issuer.isSelfSigned { return (intermediates, issuer) }
            intermediates.append(issuer)
            current = issuer
        }
        return (intermediates, current)
    }
}
