import X509

/// The root certificates of one trust domain: what a proxy trusts when it verifies a peer's X.509-SVID.
///
/// The controller ships it in each proxy's config as PEM (``pemEncoded()``, read back with
/// ``init(trustDomain:rootsPEM:)``). During a root rotation it holds the old and the new root.
public struct TrustBundle: Hashable, Sendable {
    /// The trust domain whose identities these roots vouch for.
    public let trustDomain: TrustDomain
    /// The root (or otherwise trusted CA) certificates.
    public let roots: [Certificate]

    /// A bundle from certificates.
    /// - Throws: `invalidCertificateAuthority` when `roots` is empty or one of them is not a CA.
    public init(trustDomain: TrustDomain, roots: [Certificate]) throws {
        guard !roots.isEmpty else {
            throw IdentityError(.invalidCertificateAuthority, "a trust bundle needs at least one root certificate")
        }
        for root in roots where !root.isCertificateAuthority {
            throw IdentityError(
                .invalidCertificateAuthority,
                "the trust bundle's certificate \(root.subject) is not a CA (BasicConstraints CA:TRUE is missing)"
            )
        }
        self.init(validatedTrustDomain: trustDomain, roots: roots)
    }

    /// A bundle from PEM text holding one or more `CERTIFICATE` blocks.
    /// - Throws: `invalidEncoding` for unreadable PEM, `invalidCertificateAuthority` as above.
    public init(trustDomain: TrustDomain, rootsPEM: String) throws {
        try self.init(trustDomain: trustDomain, roots: PEM.certificates(rootsPEM, what: "the trust bundle"))
    }

    init(validatedTrustDomain: TrustDomain, roots: [Certificate]) {
        self.trustDomain = validatedTrustDomain
        var unique: [Certificate] = []
        for root in roots where !unique.contains(root) { unique.append(root) }
        self.roots = unique
    }

    /// The roots as concatenated PEM blocks, in order.
    public func pemEncoded() throws -> String {
        try PEM.encode(roots)
    }

    /// The roots DER-encoded (e.g. for `NIOSSLCertificate(bytes:format: .der)`).
    public func derEncoded() throws -> [[UInt8]] {
        try roots.map { try $0.derBytes }
    }
}
