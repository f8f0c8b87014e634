/// An error from `WeftIdentity`: a stable ``Code`` to branch on and a message that says what is wrong.
///
/// The message is meant for people (logs, Kubernetes Events, gRPC status details); the code is for code.
public struct IdentityError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of failure this is.
    public enum Code: String, Hashable, Sendable, CaseIterable {
        // MARK: - SPIFFE IDs
        /// The string is not a valid SPIFFE ID (or trust domain).
        case invalidSpiffeID
        // MARK: - Encodings
        /// A PEM or DER input could not be decoded, or held no certificate or key.
        case invalidEncoding
        // MARK: - CA material
        /// The CA's certificate, key or chain is unusable (not a CA, key does not match, chain broken, no root).
        case invalidCertificateAuthority
        /// The CA certificate is not valid at the time of issuance (expired or not yet valid).
        case certificateAuthorityNotValid
        // MARK: - CSRs
        /// The CSR's signature does not verify with its own public key.
        case csrSignatureInvalid
        /// The CSR asks for another identity than the one proven by the caller, or for more than one.
        case csrIdentityMismatch
        /// The CSR's public key is not ECDSA P-256.
        case csrKeyNotP256
        /// The CSR is malformed (unreadable extension request, unexpected names).
        case csrMalformed
        // MARK: - Verification
        /// A certificate in the chain has expired at the verification time.
        case expired
        /// A certificate in the chain is not valid yet at the verification time.
        case notYetValid
        /// No chain could be built from the peer's certificates to a root of the trust bundle.
        case unknownIssuer
        /// The leaf carries no SPIFFE ID, or more than one URI SAN, or an invalid one.
        case noSpiffeID
        /// The leaf's SPIFFE ID belongs to another trust domain than the bundle's.
        case wrongTrustDomain
        /// The leaf is not an X.509-SVID leaf (it is a CA, or lacks digitalSignature) or the chain breaks
        /// another RFC 5280 rule (basic or name constraints, version).
        case invalidLeaf
        /// The peer presented no certificate.
        case emptyChain
        // MARK: - Arguments
        /// An argument is out of range (a non-positive lifetime, say).
        case invalidArgument
    }

    /// What kind of failure this is.
    public var code: Code
    /// What is wrong, in words.
    public var message: String

    /// Creates an error with a code and a message.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// `code: message`.
    public var description: String { "\(code.rawValue): \(message)" }
}
