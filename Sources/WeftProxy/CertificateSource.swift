import Logging
import NIOSSL
import ServiceLifecycle
import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The proxy's certificate (SVID: chain and private key) and the roots it trusts peers by, as PEM.
/// `version` changes whenever any of them does: the proxy builds its TLS contexts once per version.
public struct TLSMaterial: Sendable, Hashable {
    /// The leaf first, then any intermediates.
    public var certificateChainPEM: String
    public var privateKeyPEM: String
    /// The trust bundle: the mesh CA roots.
    public var trustRootsPEM: String
    public var version: Int

    public init(certificateChainPEM: String, privateKeyPEM: String, trustRootsPEM: String, version: Int) {
        self.certificateChainPEM = certificateChainPEM
        self.privateKeyPEM = privateKeyPEM
        self.trustRootsPEM = trustRootsPEM
        self.version = version
    }
}

/// Where the proxy reads its TLS material from, at every new connection (a cheap read: contexts are cached per
/// `TLSMaterial.version`). Rotation is a new value with a new version: new connections use it, existing ones keep
/// the certificate they were made with. Today a file source; later the controller's push stream.
public protocol CertificateSource: Sendable {
    /// The material to use now; `nil` while there is none (no mTLS: STRICT ports refuse every connection).
    func current() -> TLSMaterial?
}

/// A `CertificateSource` whose material is set from outside (tests, and the push stream's certificates).
public final class InMemoryCertificateSource: CertificateSource {
    private let material = Mutex<TLSMaterial?>(nil)

    public init(_ material: TLSMaterial? = nil) {
        self.material.withLock { $0 = material }
    }

    public func current() -> TLSMaterial? { self.material.withLock { $0 } }

    /// Replaces only the trust bundle (the controller sends it with each config), keeping the certificate; the
    /// version moves on when it differs.
    public func replaceTrustRoots(_ trustRootsPEM: String) {
        self.material.withLock {
            guard var material = $0, material.trustRootsPEM != trustRootsPEM else { return }
            material.trustRootsPEM = trustRootsPEM
            material.version += 1
            $0 = material
        }
    }

    /// Replaces the material; its version becomes one more than the last.
    public func replace(certificateChainPEM: String, privateKeyPEM: String, trustRootsPEM: String) {
        self.material.withLock {
            $0 = TLSMaterial(
                certificateChainPEM: certificateChainPEM, privateKeyPEM: privateKeyPEM, trustRootsPEM: trustRootsPEM,
                version: ($0?.version ?? 0) + 1)
        }
    }
}

/// TLS material from three PEM files (`--tls-cert`, `--tls-key`, `--trust-bundle`), read at start and re-read
/// when any of them changes (polled every `interval`). A set of files that does not load (a key that does not
/// match the certificate while they are being swapped, a bad PEM) is logged and the previous material stays.
public final class FileCertificateSource: CertificateSource, Service {
    private let certificatePath: String
    private let keyPath: String
    private let bundlePath: String
    private let interval: Duration
    private let logger: Logger
    private let state = Mutex<(material: TLSMaterial?, stamp: [FileStamp?])>((nil, []))

    /// Loads the files once; throws when they do not load.
    public init(
        certificatePath: String, keyPath: String, bundlePath: String, interval: Duration = .seconds(1),
        logger: Logger
    ) throws {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
        self.bundlePath = bundlePath
        self.interval = interval
        self.logger = logger
        try self.reload()
    }

    public func current() -> TLSMaterial? { self.state.withLock { $0.material } }

    /// Re-reads the files when their modification times or sizes changed. Throws when they do not load
    /// (the previous material stays).
    @discardableResult
    public func reload() throws -> Bool {
        let paths = [self.certificatePath, self.keyPath, self.bundlePath]
        let stamp = paths.map(FileStamp.init(path:))
        if self.state.withLock({ $0.stamp == stamp }) {
            return false
        }
        let chain = try String(contentsOfFile: self.certificatePath, encoding: .utf8)
        let key = try String(contentsOfFile: self.keyPath, encoding: .utf8)
        let bundle = try String(contentsOfFile: self.bundlePath, encoding: .utf8)
        // Everything must load, and the key must match the certificate, before the material is used.
        _ = try MeshTLS.makeContexts(
            TLSMaterial(certificateChainPEM: chain, privateKeyPEM: key, trustRootsPEM: bundle, version: 0))
        self.state.withLock {
            $0.material = TLSMaterial(
                certificateChainPEM: chain, privateKeyPEM: key, trustRootsPEM: bundle,
                version: ($0.material?.version ?? 0) + 1)
            $0.stamp = stamp
        }
        return true
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            try? await Task.sleep(for: self.interval)
            do {
                if try self.reload() {
                    self.logger.info(
                        "tls material reloaded", metadata: ["tls.version": "\(self.current()?.version ?? 0)"])
                }
            } catch {
                self.logger.warning(
                    "tls material did not load; keeping the previous one", metadata: ["error": "\(error)"])
            }
        }
    }
}
