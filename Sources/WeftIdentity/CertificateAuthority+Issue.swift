import Crypto
import X509

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension CertificateAuthority {
    /// Issues an X.509-SVID for `identity` from a proxy's CSR.
    ///
    /// The caller (the controller's CA service) passes the identity it has proven, e.g. from the ServiceAccount
    /// token via TokenReview; the CSR must ask for exactly that identity. The CSR is refused when its signature
    /// does not verify (`csrSignatureInvalid`), its key is not ECDSA P-256 (`csrKeyNotP256`), it requests
    /// another or more than one name (`csrIdentityMismatch`, `csrMalformed`), or `identity` is in another trust
    /// domain than the CA's (`csrIdentityMismatch`).
    ///
    /// The certificate: the CSR's P-256 key, an empty subject, one URI SAN (critical, as the subject is empty),
    /// BasicConstraints `CA:FALSE` (critical), KeyUsage `digitalSignature` (critical), ExtendedKeyUsage
    /// `serverAuth, clientAuth`, Authority and Subject Key Identifiers, a serial from ``serialNumbers``; valid from
    /// `now - 1 minute` to `now + lifetime`, but never beyond the notAfter of the CA certificate or its chain.
    ///
    /// - Parameters:
    ///   - csrPEM: the CSR (`CERTIFICATE REQUEST` PEM block), e.g. from ``CSRBuilder/make(identity:key:)``.
    ///   - identity: the identity the caller has proven.
    ///   - now: the time of issuance.
    ///   - lifetime: seconds from `now` to `notAfter`; 24 hours by default.
    /// - Throws: ``IdentityError``; also `certificateAuthorityNotValid` when the CA is expired or not yet valid at
    ///   `now`.
    public func issue(
        csrPEM: String,
        for identity: SpiffeID,
        now: Date,
        lifetime: TimeInterval = CertificateValidity.defaultLeafLifetime
    ) throws -> IssuedCertificate {
        let csr: CertificateSigningRequest
        do {
            csr = try CertificateSigningRequest(pemEncoded: csrPEM)
        } catch {
            throw IdentityError(.invalidEncoding, "the CSR is not a PEM CERTIFICATE REQUEST: \(error)")
        }
        return try issue(csr: csr, for: identity, now: now, lifetime: lifetime)
    }

    /// Issues an X.509-SVID for `identity` from a decoded CSR; see ``issue(csrPEM:for:now:lifetime:)``.
    public func issue(
        csr: CertificateSigningRequest,
        for identity: SpiffeID,
        now: Date,
        lifetime: TimeInterval = CertificateValidity.defaultLeafLifetime
    ) throws -> IssuedCertificate {
        guard lifetime > 0 else {
            throw IdentityError(.invalidArgument, "the certificate lifetime must be positive (got \(lifetime) s)")
        }
        let publicKey = try Self.checkedPublicKey(of: csr, for: identity, trustDomain: trustDomain)
        try checkValid(at: now)

        let window = self.leafWindow(at: now, lifetime: lifetime)
        let authorityKeyID = self.authorityKeyIdentifier
        let leafKey = Certificate.PublicKey(publicKey)
        let leaf = try Certificate(
            version: .v3,
            serialNumber: serialNumbers.next(),
            publicKey: leafKey,
            notValidBefore: window.notBefore,
            notValidAfter: window.notAfter,
            issuer: certificate.subject,
            subject: DistinguishedName(),
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth, .clientAuth])
                AuthorityKeyIdentifier(keyIdentifier: authorityKeyID)
                SubjectKeyIdentifier(hash: leafKey)
                Critical(SubjectAlternativeNames([.uniformResourceIdentifier(identity.description)]))
            },
            issuerPrivateKey: privateKey
        )
        return try IssuedCertificate(identity: identity, certificate: leaf, chain: chainBelowRoot)
    }

    /// A leaf's validity: `CertificateValidity`'s window at `now`, within the CA's own validity and its chain's.
    func leafWindow(at now: Date, lifetime: TimeInterval) -> (notBefore: Date, notAfter: Date) {
        var window = CertificateValidity(lifetime: lifetime).window(at: now)
        let caNotAfter = ([certificate, root] + intermediates).map(\.notValidAfter).min() ?? certificate.notValidAfter
        window.notAfter = min(window.notAfter, caNotAfter)
        window.notBefore = max(window.notBefore, certificate.notValidBefore)
        return window
    }

    /// The key identifier the CA's leaves name as their authority's.
    var authorityKeyIdentifier: ArraySlice<UInt8> {
        (try? certificate.extensions.subjectKeyIdentifier)?.keyIdentifier
            ?? SubjectKeyIdentifier(hash: certificate.publicKey).keyIdentifier
    }

    /// Throws `certificateAuthorityNotValid` unless the CA certificate and its chain are valid at `now`.
    func checkValid(at now: Date) throws {
        for ca in [certificate] + intermediates + [root] {
            if now < ca.notValidBefore {
                throw IdentityError(
                    .certificateAuthorityNotValid,
                    "the CA certificate \(ca.subject) is not valid before \(ca.notValidBefore) (now is \(now))"
                )
            }
            if now >= ca.notValidAfter {
                throw IdentityError(
                    .certificateAuthorityNotValid,
                    "the CA certificate \(ca.subject) expired at \(ca.notValidAfter) (now is \(now))"
                )
            }
        }
    }

    /// The CSR's P-256 key once its signature, key type and requested identity are checked.
    static func checkedPublicKey(
        of csr: CertificateSigningRequest,
        for identity: SpiffeID,
        trustDomain: TrustDomain
    ) throws -> P256.Signing.PublicKey {
        guard csr.publicKey.isValidSignature(csr.signature, for: csr) else {
            throw IdentityError(.csrSignatureInvalid, "the CSR's signature does not verify with its public key")
        }
        guard let key = P256.Signing.PublicKey(csr.publicKey) else {
            throw IdentityError(.csrKeyNotP256, "the CSR's key is \(csr.publicKey); only ECDSA P-256 is accepted")
        }
        guard identity.trustDomain == trustDomain else {
            throw IdentityError(
                .csrIdentityMismatch,
                "this CA issues identities of trust domain \(trustDomain), not \(identity.trustDomain)"
            )
        }
        let requested = try requestedNames(of: csr)
        guard requested.count == 1, case .uniformResourceIdentifier(let uri) = requested[0] else {
            throw IdentityError(
                .csrMalformed,
                "the CSR must request exactly one URI SAN (the SPIFFE ID), it requests \(requested.count) "
                    + "subject alternative name(s): \(requested)"
            )
        }
        guard uri == identity.description else {
            throw IdentityError(
                .csrIdentityMismatch,
                "the CSR requests \(uri) but the caller's identity is \(identity)"
            )
        }
        return key
    }

    /// The subject alternative names of the CSR's extension request (none when it has none).
    static func requestedNames(of csr: CertificateSigningRequest) throws -> [GeneralName] {
        do {
            guard let request = try csr.attributes.extensionRequest,
                let names = try request.extensions.subjectAlternativeNames
            else { return [] }
            return Array(names)
        } catch {
            throw IdentityError(.csrMalformed, "the CSR's extension request cannot be decoded: \(error)")
        }
    }
}
