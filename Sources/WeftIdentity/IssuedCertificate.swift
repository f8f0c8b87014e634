import SwiftASN1
import X509

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// An X.509-SVID the CA issued: the leaf, the certificates a TLS peer sends after it, and its validity.
public struct IssuedCertificate: Hashable, Sendable {
    /// The identity in the leaf's URI SAN.
    public let identity: SpiffeID
    /// The leaf certificate.
    public let certificate: Certificate
    /// The certificates between the leaf and the root, the leaf's issuer first (never the root itself).
    public let chain: [Certificate]
    /// The leaf as PEM.
    public let certificatePEM: String
    /// ``chain`` as PEM blocks, one per certificate, in the same order.
    public let chainPEMs: [String]

    init(identity: SpiffeID, certificate: Certificate, chain: [Certificate]) throws {
        self.identity = identity
        self.certificate = certificate
        self.chain = chain
        self.certificatePEM = try PEM.encode(certificate)
        self.chainPEMs = try chain.map { try PEM.encode($0) }
    }

    /// The leaf's `notBefore` (as encoded: whole seconds).
    public var notBefore: Date { certificate.notValidBefore }
    /// The leaf's `notAfter` (as encoded: whole seconds).
    public var notAfter: Date { certificate.notValidAfter }
    /// The leaf's serial number.
    public var serialNumber: Certificate.SerialNumber { certificate.serialNumber }

    /// The leaf followed by its chain, as one PEM text (what a TLS server or client loads as its certificate
    /// chain, e.g. `NIOSSLCertificate.fromPEMBytes`).
    public var fullChainPEM: String { certificatePEM + chainPEMs.joined() }

    /// The leaf followed by its chain, DER-encoded.
    public var fullChainDER: [[UInt8]] {
        get throws { try ([certificate] + chain).map { try $0.derBytes } }
    }
}

extension Certificate {
    /// The certificate's DER encoding.
    var derBytes: [UInt8] {
        get throws {
            var serializer = DER.Serializer()
            try serializer.serialize(self)
            return serializer.serializedBytes
        }
    }
}
