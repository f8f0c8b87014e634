import Crypto
import Foundation
import NIOSSL
import Synchronization
import WeftIdentity

/// The admission webhook's serving certificate: issued by the mesh CA for the webhook's host names
/// (`weft-controller.<root namespace>.svc` and the `--webhook-host` names), re-issued at half its lifetime so
/// it never expires under the API server (new connections get the new one); or a user-provided certificate and
/// key (e.g. from cert-manager), re-read when the files change.
public final class WebhookTLS: Sendable {
    public enum Source: Sendable {
        /// Issued by the mesh CA for these hosts (DNS names or IP addresses).
        case meshCA(MeshCA, hosts: [String])
        /// PEM files: the chain (leaf first) and its key.
        case files(certificate: String, key: String)
    }

    private struct Current {
        var context: NIOSSLContext
        /// When to issue a new certificate (mesh CA), or the files' modification dates (files).
        var renewAt: Date?
        var stamp: [Date?]
        /// The serving chain's PEM (tests read it).
        var chainPEM: String
    }

    private let source: Source
    private let current: Mutex<Current>

    /// The default host names: the Service the webhook configurations point at.
    public static func serviceHosts(rootNamespace: String) -> [String] {
        ["weft-controller.\(rootNamespace).svc", "weft-controller.\(rootNamespace).svc.cluster.local"]
    }

    public init(_ source: Source) throws {
        self.source = source
        self.current = Mutex(try Self.make(source))
    }

    /// The context for a new connection: a fresh certificate once the current one is due.
    public func connectionContext() -> NIOSSLContext {
        let source = self.source
        return self.current.withLock { current in
            let due: Bool
            switch source {
            case .meshCA(let ca, _): due = current.renewAt.map { ca.now() >= $0 } ?? false
            case .files(let certificate, let key): due = Self.stamps([certificate, key]) != current.stamp
            }
            if due, let renewed = try? Self.make(source) { current = renewed }
            return current.context
        }
    }

    /// The chain currently served, PEM.
    public var chainPEM: String { self.current.withLock { $0.chainPEM } }

    private static func make(_ source: Source) throws -> Current {
        let chainPEM: String
        let keyPEM: String
        var renewAt: Date?
        var stamp: [Date?] = []
        switch source {
        case .meshCA(let ca, let hosts):
            let key = P256.Signing.PrivateKey()
            let issued = try ca.authority.issueServingCertificate(
                hosts: hosts, publicKey: key.publicKey, now: ca.now(), lifetime: ca.svidLifetime)
            chainPEM = issued.fullChainPEM
            keyPEM = key.pemRepresentation
            renewAt = RotationPolicy(maximumJitter: 0).renewalTime(
                notBefore: issued.notBefore, notAfter: issued.notAfter, jitter: 0)
        case .files(let certificate, let key):
            stamp = Self.stamps([certificate, key])
            chainPEM = try String(contentsOfFile: certificate, encoding: .utf8)
            keyPEM = try String(contentsOfFile: key, encoding: .utf8)
        }
        let chain = try NIOSSLCertificate.fromPEMBytes(Array(chainPEM.utf8))
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(keyPEM.utf8), format: .pem)))
        configuration.minimumTLSVersion = .tlsv12
        configuration.applicationProtocols = ["http/1.1"]
        return Current(
            context: try NIOSSLContext(configuration: configuration), renewAt: renewAt, stamp: stamp,
            chainPEM: chainPEM)
    }

    private static func stamps(_ paths: [String]) -> [Date?] {
        paths.map { (try? FileManager.default.attributesOfItem(atPath: $0))?[.modificationDate] as? Date }
    }
}
