import X509

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Verifies a peer's X.509-SVID chain against a ``TrustBundle`` and returns the peer's SPIFFE ID.
///
/// Path validation is swift-certificates' `Verifier` with the RFC 5280 policy evaluated at `now`, plus the
/// X.509-SVID rules (``SVIDPolicy``): the leaf is not a CA, has KeyUsage `digitalSignature` and no certificate
/// signing, and carries exactly one URI SAN, a SPIFFE ID in the bundle's trust domain.
///
/// Errors (``IdentityError/Code``): `emptyChain`, `invalidEncoding`, `unknownIssuer` (no chain to a bundle root:
/// another CA, a broken signature, a missing intermediate), `expired`, `notYetValid`, `noSpiffeID`,
/// `wrongTrustDomain`, `invalidLeaf`.
///
/// The proxy calls ``verify(derChain:now:)`` from NIOSSL's custom verification callback with the peer chain as
/// DER (`peerCertificates.map { try $0.toDERBytes() }`), completing the callback's promise from the async result
/// (e.g. `promise.completeWithTask`). Verification happens once per TLS handshake, not per request.
public struct SVIDVerifier: Sendable {
    /// The roots and trust domain peers are checked against.
    public let bundle: TrustBundle

    /// A verifier for peers of `bundle`'s trust domain.
    public init(bundle: TrustBundle) {
        self.bundle = bundle
    }

    /// Verifies a chain given as DER certificates, the leaf first, then intermediates (the order TLS sends them).
    /// - Returns: the leaf's SPIFFE ID.
    public func verify(derChain: [[UInt8]], now: Date) async throws -> SpiffeID {
        var chain: [Certificate] = []
        for (index, der) in derChain.enumerated() {
            do {
                chain.append(try Certificate(derEncoded: der))
            } catch {
                throw IdentityError(.invalidEncoding, "the peer's certificate \(index + 1) cannot be decoded: \(error)")
            }
        }
        return try await verify(chain: chain, now: now)
    }

    /// Verifies a chain given as PEM text, the leaf first.
    /// - Returns: the leaf's SPIFFE ID.
    public func verify(pemChain: String, now: Date) async throws -> SpiffeID {
        try await verify(chain: PEM.certificates(pemChain, what: "the peer chain"), now: now)
    }

    /// Verifies a chain, the leaf first, then any intermediates (in any order).
    /// - Returns: the leaf's SPIFFE ID.
    /// - Throws: ``IdentityError`` naming why the chain is refused.
    public func verify(chain: [Certificate], now: Date) async throws -> SpiffeID {
        guard let leaf = chain.first else {
            throw IdentityError(.emptyChain, "the peer presented no certificate")
        }
        let policy = SVIDPolicy(trustDomain: bundle.trustDomain, now: now)
        let unhandled = leaf.extensions.filter { $0.critical && !policy.verifyingCriticalExtensions.contains($0.oid) }
        guard unhandled.isEmpty else {
            throw IdentityError(
                .invalidLeaf,
                "the leaf has critical extensions an X.509-SVID does not use: \(unhandled.map { $0.oid })"
            )
        }
        var verifier = Verifier(rootCertificates: CertificateStore(bundle.roots)) { policy }
        let result = await verifier.validate(leaf: leaf, intermediates: CertificateStore(chain.dropFirst()))
        switch result {
        case .validCertificate:
            if let identity = policy.outcome.identity { return identity }
            throw IdentityError(.noSpiffeID, "the leaf carries no SPIFFE ID")
        case .couldNotValidate(let failures):
            if let failure = policy.outcome.failure { throw failure }
            if let first = failures.first {
                throw IdentityError(.invalidLeaf, "the chain breaks RFC 5280: \(first.policyFailureReason)")
            }
            throw IdentityError(
                .unknownIssuer,
                "no chain from \(Self.name(of: leaf)) (issuer \(leaf.issuer)) to a root of trust domain "
                    + "\(bundle.trustDomain)'s bundle"
            )
        }
    }

    /// The leaf's URI SANs, or its subject, for messages.
    static func name(of certificate: Certificate) -> String {
        let uris = (try? certificate.extensions.subjectAlternativeNames)?.compactMap { name -> String? in
            if case .uniformResourceIdentifier(let uri) = name { return uri }
            return nil
        }
        if let uris, !uris.isEmpty { return uris.joined(separator: ", ") }
        return "\"\(certificate.subject)\""
    }
}
