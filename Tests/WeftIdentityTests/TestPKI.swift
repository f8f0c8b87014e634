import Crypto
import Foundation
import SwiftASN1
import WeftIdentity
import X509

/// Deterministic test PKI: fixed times, counting serials, and roots and intermediates built in-process.
enum TestPKI {
    /// 2026-01-01T00:00:00Z: every test's "now".
    static let now = Date(timeIntervalSince1970: 1_767_225_600)
    static let trustDomain = try! TrustDomain("cluster.local")
    static let web = try! SpiffeID("spiffe://cluster.local/ns/shop/sa/web")

    /// Serials 1, 2, 3, ... (as 16-byte big-endian values).
    static func countingSerials() -> SerialNumberGenerator {
        let counter = Counter()
        return SerialNumberGenerator { counter.next() }
    }

    final class Counter: @unchecked Sendable {
        // Tests only: guarded by the lock.
        private let lock = NSLock()
        private var value: UInt64 = 0
        func next() -> [UInt8] {
            lock.lock()
            defer { lock.unlock() }
            value += 1
            return [UInt8](repeating: 0, count: 8) + withUnsafeBytes(of: value.bigEndian, Array.init)
        }
    }

    /// A generated root's Secret and its key.
    static func root(
        trustDomain: TrustDomain = trustDomain,
        now: Date = now,
        validity: TimeInterval = CertificateValidity.defaultRootLifetime
    ) throws -> (secret: MeshCASecret, key: P256.Signing.PrivateKey) {
        let key = P256.Signing.PrivateKey()
        let secret = try CertificateAuthority.generateRoot(
            trustDomain: trustDomain, now: now, validity: validity, key: key, serialNumbers: countingSerials())
        return (secret, key)
    }

    static func authority(_ secret: MeshCASecret, trustDomain: TrustDomain = trustDomain) throws -> CertificateAuthority
    {
        try CertificateAuthority(secret: secret, trustDomain: trustDomain, serialNumbers: countingSerials())
    }

    /// An intermediate CA certificate signed by `issuerKey`/`issuer`, as a user would supply it.
    static func intermediate(
        name: String,
        issuer: Certificate,
        issuerKey: P256.Signing.PrivateKey,
        now: Date = now,
        validity: TimeInterval = 365 * 24 * 3600
    ) throws -> (certificate: Certificate, key: P256.Signing.PrivateKey) {
        let key = P256.Signing.PrivateKey()
        let subject = try DistinguishedName {
            OrganizationName("Example Corp")
            CommonName(name)
        }
        let certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(bytes: [0x42]),
            publicKey: .init(key.publicKey),
            notValidBefore: now.addingTimeInterval(-3600),
            notValidAfter: now.addingTimeInterval(validity),
            issuer: issuer.subject,
            subject: subject,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: .init(key.publicKey))
                AuthorityKeyIdentifier(keyIdentifier: try issuer.extensions.subjectKeyIdentifier?.keyIdentifier)
            },
            issuerPrivateKey: .init(issuerKey)
        )
        return (certificate, key)
    }

    static func certificate(_ pem: String) throws -> Certificate { try Certificate(pemEncoded: pem) }

    static func pem(_ certificate: Certificate) throws -> String { try certificate.serializeAsPEM().pemString + "\n" }

    /// Issues an SVID for `identity` from a fresh key's CSR.
    static func issue(
        _ ca: CertificateAuthority,
        _ identity: SpiffeID = web,
        now: Date = now,
        lifetime: TimeInterval = CertificateValidity.defaultLeafLifetime
    ) throws -> IssuedCertificate {
        let csr = try CSRBuilder.make(identity: identity, key: P256.Signing.PrivateKey())
        return try ca.issue(csrPEM: csr, for: identity, now: now, lifetime: lifetime)
    }
}

/// The `IdentityError` code `body` throws, or nil when it does not throw.
func errorCode(_ body: () throws -> Void) -> IdentityError.Code? {
    do {
        try body()
        return nil
    } catch let error as IdentityError {
        return error.code
    } catch {
        return nil
    }
}

func errorCode(_ body: () async throws -> Void) async -> IdentityError.Code? {
    do {
        try await body()
        return nil
    } catch let error as IdentityError {
        return error.code
    } catch {
        return nil
    }
}
