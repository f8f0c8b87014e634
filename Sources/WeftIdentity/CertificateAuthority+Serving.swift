import Crypto
import SwiftASN1
import X509

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A TLS server certificate for DNS names and IP addresses (the controller's admission webhook), issued by the
/// mesh CA: unlike an X.509-SVID it names hosts, so the API server can verify it against the webhook's
/// Service name or URL.
public struct ServingCertificate: Hashable, Sendable {
    public let certificate: Certificate
    /// Intermediates between the certificate and the root, issuer first.
    public let chain: [Certificate]
    /// Leaf then chain, PEM.
    public let fullChainPEM: String

    public var notBefore: Date { self.certificate.notValidBefore }
    public var notAfter: Date { self.certificate.notValidAfter }
}

extension CertificateAuthority {
    /// Issues a server certificate for `hosts` (DNS names, or IPv4/IPv6 addresses) to `publicKey`.
    ///
    /// The certificate: subject CN the first host, one SAN per host (`dNSName`, or `iPAddress` for an address),
    /// BasicConstraints `CA:FALSE` (critical), KeyUsage `digitalSignature` (critical), ExtendedKeyUsage
    /// `serverAuth`; valid from `now - 1 minute` to `now + lifetime`, never beyond the CA's notAfter.
    /// - Throws: `invalidArgument` without hosts or with an empty one or a non-positive lifetime;
    ///   `certificateAuthorityNotValid` when the CA is not valid at `now`.
    public func issueServingCertificate(
        hosts: [String], publicKey: P256.Signing.PublicKey, now: Date,
        lifetime: TimeInterval = CertificateValidity.defaultLeafLifetime
    ) throws -> ServingCertificate {
        guard let first = hosts.first, !hosts.contains(where: \.isEmpty) else {
            throw IdentityError(.invalidArgument, "a serving certificate needs at least one host, and no empty one")
        }
        guard lifetime > 0 else {
            throw IdentityError(.invalidArgument, "the certificate lifetime must be positive (got \(lifetime) s)")
        }
        try checkValid(at: now)
        let window = self.leafWindow(at: now, lifetime: lifetime)
        let names: [GeneralName] = hosts.map { host in
            if let bytes = Self.addressBytes(host) {
                return .ipAddress(ASN1OctetString(contentBytes: ArraySlice(bytes)))
            }
            return .dnsName(host)
        }
        let authorityKeyID = self.authorityKeyIdentifier
        let leafKey = Certificate.PublicKey(publicKey)
        let leaf = try Certificate(
            version: .v3,
            serialNumber: serialNumbers.next(),
            publicKey: leafKey,
            notValidBefore: window.notBefore,
            notValidAfter: window.notAfter,
            issuer: certificate.subject,
            subject: try DistinguishedName { CommonName(String(first.prefix(64))) },
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth])
                AuthorityKeyIdentifier(keyIdentifier: authorityKeyID)
                SubjectKeyIdentifier(hash: leafKey)
                SubjectAlternativeNames(names)
            },
            issuerPrivateKey: privateKey
        )
        let pem = try ([leaf] + chainBelowRoot).map { try PEM.encode($0) }.joined()
        return ServingCertificate(certificate: leaf, chain: chainBelowRoot, fullChainPEM: pem)
    }

    /// The 4 or 16 bytes of an IPv4 or IPv6 address literal; nil for anything else (a DNS name).
    static func addressBytes(_ text: String) -> [UInt8]? {
        let octets = text.split(separator: ".", omittingEmptySubsequences: false)
        if octets.count == 4 {
            let bytes = octets.compactMap { octet -> UInt8? in
                guard !octet.isEmpty, octet.count <= 3, octet.allSatisfy({ $0.isASCII && $0.isNumber }) else {
                    return nil
                }
                return UInt8(octet)
            }
            return bytes.count == 4 ? bytes : nil
        }
        guard text.contains(":") else { return nil }
        let halves = text.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func groups(_ part: String) -> [UInt16]? {
            if part.isEmpty { return [] }
            var values: [UInt16] = []
            for group in part.split(separator: ":", omittingEmptySubsequences: false) {
                guard !group.isEmpty, group.count <= 4, let value = UInt16(group, radix: 16) else { return nil }
                values.append(value)
            }
            return values
        }
        guard let head = groups(halves[0]) else { return nil }
        var all = head
        if halves.count == 2 {
            guard let tail = groups(halves[1]), head.count + tail.count < 8 else { return nil }
            all += Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        }
        guard all.count == 8 else { return nil }
        return all.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xff)] }
    }
}
