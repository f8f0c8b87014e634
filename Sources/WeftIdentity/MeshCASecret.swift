#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The mesh CA's material as it is stored in the Kubernetes Secret `weft-system/weft-ca`.
///
/// The Secret has type `kubernetes.io/tls` and cert-manager's data keys:
///
/// | key | holds |
/// | --- | --- |
/// | `tls.crt` | the CA signing certificate, PEM, optionally followed by its intermediates up to the root |
/// | `tls.key` | the signing certificate's private key, PEM (PKCS#8 `PRIVATE KEY` when Weft writes it; SEC1 `EC PRIVATE KEY` and RSA are read too) |
/// | `ca.crt` | the trust root(s), PEM: the trust bundle sent to every proxy; optional when `tls.crt` ends in a self-signed root |
///
/// Why these keys: `kubernetes.io/tls` is a type the API server knows (it requires `tls.crt` and `tls.key`), so
/// `kubectl create secret tls weft-ca --cert=... --key=...` makes a valid Secret, and a cert-manager
/// `Certificate` with `isCA: true` writes exactly this layout (`tls.crt` with the chain, `tls.key`, `ca.crt`),
/// so a cert-manager-managed intermediate plugs in unchanged. Istio's `cacerts` names (`ca-cert.pem`, ...)
/// would need an `Opaque` Secret written by hand.
public struct MeshCASecret: Hashable, Sendable {
    /// The Secret's `type`.
    public static let secretType = "kubernetes.io/tls"
    /// The data key of the signing certificate (and chain).
    public static let certificateKey = "tls.crt"
    /// The data key of the signing key.
    public static let privateKeyKey = "tls.key"
    /// The data key of the trust root(s).
    public static let trustRootsKey = "ca.crt"

    /// `tls.crt`: the signing certificate, optionally followed by intermediates up to the root.
    public var certificatePEM: String
    /// `tls.key`: the signing key.
    public var privateKeyPEM: String
    /// `ca.crt`: the trust root(s); nil when absent.
    public var trustRootsPEM: String?

    /// The material from its three PEM texts.
    public init(certificatePEM: String, privateKeyPEM: String, trustRootsPEM: String? = nil) {
        self.certificatePEM = certificatePEM
        self.privateKeyPEM = privateKeyPEM
        self.trustRootsPEM = trustRootsPEM
    }

    /// Reads a Secret's decoded `data`.
    /// - Throws: `invalidCertificateAuthority` when `tls.crt` or `tls.key` is missing or a value is not UTF-8.
    public init(secretData data: [String: Data]) throws {
        func text(_ key: String) throws -> String? {
            guard let bytes = data[key] else { return nil }
            guard let string = String(data: bytes, encoding: .utf8) else {
                throw IdentityError(.invalidCertificateAuthority, "the CA Secret's \(key) is not UTF-8 text")
            }
            return string
        }
        guard let certificate = try text(Self.certificateKey) else {
            throw IdentityError(.invalidCertificateAuthority, "the CA Secret has no \(Self.certificateKey)")
        }
        guard let key = try text(Self.privateKeyKey) else {
            throw IdentityError(.invalidCertificateAuthority, "the CA Secret has no \(Self.privateKeyKey)")
        }
        self.init(certificatePEM: certificate, privateKeyPEM: key, trustRootsPEM: try text(Self.trustRootsKey))
    }

    /// The Secret's `data` (before base64), with `ca.crt` only when set.
    public var secretData: [String: Data] {
        var data = [
            Self.certificateKey: Data(certificatePEM.utf8),
            Self.privateKeyKey: Data(privateKeyPEM.utf8),
        ]
        if let trustRootsPEM { data[Self.trustRootsKey] = Data(trustRootsPEM.utf8) }
        return data
    }
}
