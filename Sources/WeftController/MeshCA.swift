import Crypto
import Foundation
import Logging
import WeftIdentity

/// The controller's mesh CA: WeftIdentity's ``CertificateAuthority`` (loaded from, or created in, the Secret
/// `<root namespace>/weft-ca`, a state directory, or memory) with the controller's clock and the SVID lifetime.
///
/// It issues the X.509-SVIDs the `Sign` RPC answers (``issue(csrPEM:for:)``) and the controller's own serving
/// certificate (``issueControllerCertificate()``), `spiffe://<trust-domain>/ns/<root namespace>/sa/weft-controller`.
public struct MeshCA: Sendable {
    /// The name of the Secret (and of the state directory's subfolder) holding the CA.
    public static let secretName = "weft-ca"
    /// The service account name in the controller's own SPIFFE ID.
    public static let controllerServiceAccount = "weft-controller"

    /// The signing CA.
    public let authority: CertificateAuthority
    /// The namespace the controller runs in (and the CA Secret lives in).
    public let rootNamespace: String
    /// Seconds from issuance to an SVID's `notAfter` (`--svid-lifetime`, 24 h by default).
    public let svidLifetime: TimeInterval
    /// The controller's wall clock (injected in tests).
    public let now: @Sendable () -> Date

    public init(
        authority: CertificateAuthority, rootNamespace: String,
        svidLifetime: TimeInterval = CertificateValidity.defaultLeafLifetime,
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.authority = authority
        self.rootNamespace = rootNamespace
        self.svidLifetime = svidLifetime
        self.now = now
    }

    /// The trust domain the CA issues for.
    public var trustDomain: TrustDomain { self.authority.trustDomain }

    /// The trust bundle (the roots) as PEM: what proxies verify peers and the controller with.
    public var trustBundlePEM: String {
        get throws { try self.authority.trustBundle.pemEncoded() }
    }

    /// The controller's SPIFFE ID.
    public var controllerIdentity: SpiffeID {
        get throws {
            try SpiffeID(
                trustDomain: self.trustDomain, namespace: self.rootNamespace,
                serviceAccount: Self.controllerServiceAccount)
        }
    }

    /// An SVID for `identity` from a CSR that must request exactly it.
    public func issue(csrPEM: String, for identity: SpiffeID) throws -> IssuedCertificate {
        try self.authority.issue(csrPEM: csrPEM, for: identity, now: self.now(), lifetime: self.svidLifetime)
    }

    /// A fresh key and SVID for the controller itself (its push and Sign server certificate).
    public func issueControllerCertificate() throws -> (certificate: IssuedCertificate, privateKeyPEM: String) {
        let key = P256.Signing.PrivateKey()
        let identity = try self.controllerIdentity
        let csr = try CSRBuilder.make(identity: identity, key: key)
        return (try self.issue(csrPEM: csr, for: identity), key.pemRepresentation)
    }
}

/// Why the CA could not be loaded or created.
public struct MeshCAError: Error, CustomStringConvertible, Sendable {
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { self.message }
}
