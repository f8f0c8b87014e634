import GRPCNIOTransportHTTP2
import NIOSSL
import WeftIdentity

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// How the proxy talks TLS to the controller's port 15012: it verifies the controller's certificate against a trust
/// bundle (the `--controller-ca` file for the first `Sign`, then the bundle of the Sign answers) and requires the
/// controller's SPIFFE ID (`spiffe://<trust-domain>/ns/<root namespace>/sa/weft-controller`); with `certificate` it
/// presents the proxy's SVID (the push stream), without it none (`Sign`).
public enum ControllerTLS {
    /// The transport security for one connection.
    /// - Throws: when the bundle or the certificate do not load.
    public static func security(
        trustRootsPEM: String, controllerIdentity: SpiffeID, certificate: TLSMaterial? = nil
    ) throws -> HTTP2ClientTransport.Posix.TransportSecurity {
        let bundle = try TrustBundle(trustDomain: controllerIdentity.trustDomain, rootsPEM: trustRootsPEM)
        let verifier = SVIDVerifier(bundle: bundle)
        let roots = try NIOSSLCertificate.fromPEMBytes(Array(trustRootsPEM.utf8))
        var chain: [TLSConfig.CertificateSource] = []
        var key: TLSConfig.PrivateKeySource?
        if let certificate {
            chain = [.bytes(Array(certificate.certificateChainPEM.utf8), format: .pem)]
            key = .bytes(Array(certificate.privateKeyPEM.utf8), format: .pem)
        }
        let tls = HTTP2ClientTransport.Posix.TransportSecurity.TLS(
            certificateChain: chain, privateKey: key, serverCertificateVerification: .noHostnameVerification,
            trustRoots: .certificates(try roots.map { .bytes(try $0.toDERBytes(), format: .der) }))
        var configured = tls
        // Replaces BoringSSL's chain check: the SVID rules and the controller's identity, against the bundle.
        configured.customVerificationCallback = { certificates, promise in
            let der = certificates.compactMap { try? $0.toDERBytes() }
            promise.completeWithTask {
                guard der.count == certificates.count,
                    let identity = try? await verifier.verify(derChain: der, now: Date()),
                    identity == controllerIdentity
                else { return .failed }
                return .certificateVerified(VerificationMetadata(nil))
            }
        }
        return .tls(configured)
    }
}
