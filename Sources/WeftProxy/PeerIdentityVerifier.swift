import SwiftASN1
import X509

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Verifies a peer's certificate chain (DER, leaf first) and returns its SPIFFE ID: the seam between the TLS
/// handshake and the identity rules (today `X509PeerIdentityVerifier`; later WeftIdentity's SVID verifier).
public protocol PeerIdentityVerifier: Sendable {
    func verify(chain: [[UInt8]]) async throws(PeerIdentityError) -> String
}

/// Why a peer's certificate was refused.
public struct PeerIdentityError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Code: String, Hashable, Sendable {
        /// No certificate, or one that does not parse.
        case malformed
        /// The chain does not lead to a root of the trust bundle, or breaks RFC 5280 (expired, not yet valid,
        /// a CA constraint).
        case untrusted
        /// The leaf has no single `spiffe://` URI SAN, or is a CA.
        case notASVID
        /// A valid SVID, but not an identity the destination may hold.
        case unexpectedIdentity
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(self.code.rawValue): \(self.message)" }
}

/// `PeerIdentityVerifier` on swift-certificates: the chain must verify against `roots` under the RFC 5280
/// policy at `now()` (signatures, validity, basic and name constraints), and the leaf must be an X.509-SVID: not a
/// CA, with exactly one URI SAN and that one `spiffe://<trust-domain>/<path>`.
public struct X509PeerIdentityVerifier: PeerIdentityVerifier {
    private let roots: [Certificate]
    private let now: @Sendable () -> Date

    /// `trustRootsPEM`: one or more PEM certificates. Throws when none parses.
    public init(trustRootsPEM: String, now: @escaping @Sendable () -> Date = { Date() }) throws(PeerIdentityError) {
        let roots: [Certificate]
        do {
            roots = try PEMDocument.parseMultiple(pemString: trustRootsPEM).map { try Certificate(pemDocument: $0) }
        } catch {
            throw PeerIdentityError(.malformed, "trust bundle: \(error)")
        }
        guard !roots.isEmpty else {
            throw PeerIdentityError(.malformed, "trust bundle: no certificate")
        }
        self.roots = roots
        self.now = now
    }

    public func verify(chain: [[UInt8]]) async throws(PeerIdentityError) -> String {
        guard let leafDER = chain.first else {
            throw PeerIdentityError(.malformed, "no certificate")
        }
        let leaf: Certificate
        let intermediates: [Certificate]
        do {
            leaf = try Certificate(derEncoded: leafDER)
            intermediates = try chain.dropFirst().map { try Certificate(derEncoded: $0) }
        } catch {
            throw PeerIdentityError(.malformed, "certificate does not parse: \(error)")
        }
        let spiffeID = try Self.spiffeID(of: leaf)
        var verifier = Verifier(rootCertificates: CertificateStore(self.roots)) {
            RFC5280Policy(validationTime: self.now())
            SVIDLeafPolicy()
        }
        let result = await verifier.validate(leaf: leaf, intermediates: CertificateStore(intermediates))
        switch result {
        case .validCertificate:
            return spiffeID
        case .couldNotValidate(let failures):
            let reason = failures.first.map { "\($0.policyFailureReason)" } ?? "no chain to a trusted root"
            throw PeerIdentityError(.untrusted, reason)
        }
    }

    /// The single `spiffe://` URI SAN of an X.509-SVID leaf.
    static func spiffeID(of leaf: Certificate) throws(PeerIdentityError) -> String {
        let names: SubjectAlternativeNames?
        do {
            names = try leaf.extensions.subjectAlternativeNames
        } catch {
            throw PeerIdentityError(.notASVID, "subject alternative names do not parse")
        }
        if let constraints = try? leaf.extensions.basicConstraints, case .isCertificateAuthority = constraints {
            throw PeerIdentityError(.notASVID, "the leaf is a CA certificate")
        }
        var uris: [String] = []
        for name in names ?? SubjectAlternativeNames([]) {
            if case .uniformResourceIdentifier(let uri) = name {
                uris.append(uri)
            }
        }
        guard uris.count == 1, let uri = uris.first, isSPIFFEID(uri) else {
            throw PeerIdentityError(.notASVID, "expected exactly one spiffe:// URI SAN, found \(uris)")
        }
        return uri
    }
}

/// `spiffe://<trust-domain>/<path>` with a non-empty trust domain and path, no query or fragment.
func isSPIFFEID(_ uri: String) -> Bool {
    let scheme = "spiffe://"
    guard uri.hasPrefix(scheme) else {
        return false
    }
    let rest = uri.dropFirst(scheme.count)
    guard let slash = rest.firstIndex(of: "/"), slash != rest.startIndex, rest.index(after: slash) != rest.endIndex
    else {
        return false
    }
    return !rest.contains("?") && !rest.contains("#")
}

/// Handles the SAN extension, which an SVID with an empty subject marks critical (`spiffeID(of:)` checks its
/// content); everything else is RFC 5280's.
private struct SVIDLeafPolicy: VerifierPolicy {
    let verifyingCriticalExtensions: [ASN1ObjectIdentifier] = [.X509ExtensionID.subjectAlternativeName]

    mutating func chainMeetsPolicyRequirements(chain: UnverifiedCertificateChain) async -> PolicyEvaluationResult {
        .meetsPolicy
    }
}
