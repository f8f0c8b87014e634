import SwiftASN1
import Synchronization
@_spi(FixedExpiryValidationTime) import X509

// The fixed-time RFC 5280 policy is SPI in swift-certificates (its public `init(validationTime:)` is deprecated in
// favour of it); the mesh verifies at an injected `now`, so it needs exactly that.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The X.509-SVID rules as a swift-certificates `VerifierPolicy`, evaluated at a given time.
///
/// For each candidate chain: every certificate is valid at `now` (`expired` / `notYetValid`); the RFC 5280
/// policy (version, basic and name constraints) holds; the leaf is not a CA, has KeyUsage `digitalSignature`
/// without `keyCertSign`/`cRLSign` (`invalidLeaf`), and carries exactly one URI SAN which is a SPIFFE ID
/// (`noSpiffeID`) in the trust domain (`wrongTrustDomain`). The first failure and the accepted identity are
/// recorded in ``outcome`` (the policy builder hides the policy's type behind `some VerifierPolicy`, so the
/// verifier reads them from there).
struct SVIDPolicy: VerifierPolicy {
    /// What the evaluation found: the first refusal, and the identity of an accepted chain.
    final class Outcome: Sendable {
        private let state = Mutex<(failure: IdentityError?, identity: SpiffeID?)>((nil, nil))

        var failure: IdentityError? { state.withLock { $0.failure } }
        var identity: SpiffeID? { state.withLock { $0.identity } }

        func record(_ failure: IdentityError) {
            state.withLock { if $0.failure == nil { $0.failure = failure } }
        }

        func accept(_ identity: SpiffeID) {
            state.withLock { $0.identity = identity }
        }
    }

    let trustDomain: TrustDomain
    let now: Date
    let rfc5280: RFC5280Policy
    let outcome = Outcome()

    init(trustDomain: TrustDomain, now: Date) {
        self.trustDomain = trustDomain
        self.now = now
        self.rfc5280 = RFC5280Policy(fixedExpiryValidationTime: now)
    }

    var verifyingCriticalExtensions: [ASN1ObjectIdentifier] {
        rfc5280.verifyingCriticalExtensions + [.X509ExtensionID.subjectAlternativeName]
    }

    mutating func chainMeetsPolicyRequirements(chain: UnverifiedCertificateChain) async -> PolicyEvaluationResult {
        do {
            try checkTimes(chain)
            if case .failsToMeetPolicy(let reason) = rfc5280.chainMeetsPolicyRequirements(chain: chain) {
                throw IdentityError(.invalidLeaf, "the chain breaks RFC 5280: \(reason)")
            }
            outcome.accept(try identity(of: chain.leaf))
            return .meetsPolicy
        } catch let error as IdentityError {
            outcome.record(error)
            return .failsToMeetPolicy(reason: error.description)
        } catch {
            let failure = IdentityError(.invalidLeaf, "\(error)")
            outcome.record(failure)
            return .failsToMeetPolicy(reason: failure.description)
        }
    }

    private func checkTimes(_ chain: UnverifiedCertificateChain) throws {
        for (index, certificate) in chain.enumerated() {
            let which = index == 0 ? "the leaf \(SVIDVerifier.name(of: certificate))" : "the CA \(certificate.subject)"
            if now < certificate.notValidBefore {
                throw IdentityError(
                    .notYetValid, "\(which) is not valid before \(certificate.notValidBefore) (now is \(now))")
            }
            if now > certificate.notValidAfter {
                throw IdentityError(.expired, "\(which) expired at \(certificate.notValidAfter) (now is \(now))")
            }
        }
    }

    private func identity(of leaf: Certificate) throws -> SpiffeID {
        if leaf.isCertificateAuthority {
            throw IdentityError(.invalidLeaf, "the leaf is a CA certificate; an X.509-SVID leaf has CA:FALSE")
        }
        guard let usage = try leaf.extensions.keyUsage, usage.digitalSignature else {
            throw IdentityError(.invalidLeaf, "the leaf's KeyUsage lacks digitalSignature")
        }
        if usage.keyCertSign || usage.cRLSign {
            throw IdentityError(.invalidLeaf, "the leaf's KeyUsage allows signing certificates or CRLs")
        }
        let uris = (try leaf.extensions.subjectAlternativeNames ?? SubjectAlternativeNames()).compactMap {
            name -> String? in
            if case .uniformResourceIdentifier(let uri) = name { return uri }
            return nil
        }
        guard uris.count == 1 else {
            throw IdentityError(
                .noSpiffeID,
                uris.isEmpty
                    ? "the leaf carries no URI SAN, so no SPIFFE ID"
                    : "the leaf carries \(uris.count) URI SANs (\(uris.joined(separator: ", "))); an X.509-SVID has exactly one"
            )
        }
        let identity: SpiffeID
        do {
            identity = try SpiffeID(uris[0])
        } catch let error as IdentityError {
            throw IdentityError(.noSpiffeID, "the leaf's URI SAN \(uris[0]) is not a SPIFFE ID: \(error.message)")
        }
        guard identity.trustDomain == trustDomain else {
            throw IdentityError(
                .wrongTrustDomain,
                "the peer's identity \(identity) is in trust domain \(identity.trustDomain), not \(trustDomain)"
            )
        }
        return identity
    }
}
