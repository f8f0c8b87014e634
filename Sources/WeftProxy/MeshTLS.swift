import NIOCore
import NIOSSL
import Synchronization

/// The proxy's mesh TLS: NIOSSL contexts built from a `CertificateSource`'s current material, once per material
/// version (a connection only reads the cache), and the handshake handlers that verify the peer's SVID with a
/// `PeerIdentityVerifier` in NIOSSL's custom verification callback. TLS 1.3 only; both sides present
/// certificates.
public final class MeshTLS: Sendable {
    /// The contexts of one material version.
    struct Contexts: Sendable {
        let version: Int
        /// Inbound: requires a client certificate; ALPN `h2`, `http/1.1`.
        let server: NIOSSLContext
        /// Outbound to HTTP/2 (and gRPC) clusters: ALPN `h2`.
        let clientHTTP2: NIOSSLContext
        /// Outbound to HTTP/1.1 clusters: ALPN `http/1.1`.
        let clientHTTP1: NIOSSLContext
        let verifier: any PeerIdentityVerifier
    }

    public typealias VerifierFactory = @Sendable (_ trustRootsPEM: String) throws -> any PeerIdentityVerifier

    private let source: any CertificateSource
    private let makeVerifier: VerifierFactory
    private let cache = Mutex<Contexts?>(nil)

    /// `verifier` builds the peer verifier for a trust bundle (default: `X509PeerIdentityVerifier`).
    public init(source: any CertificateSource, verifier: VerifierFactory? = nil) {
        self.source = source
        self.makeVerifier = verifier ?? { try X509PeerIdentityVerifier(trustRootsPEM: $0) }
    }

    /// The contexts for the source's current material; the last good ones when the current material does not
    /// build; `nil` when there has never been any.
    var contexts: Contexts? {
        let cached = self.cache.withLock { $0 }
        guard let material = self.source.current() else {
            return cached
        }
        if let cached, cached.version == material.version {
            return cached
        }
        guard let built = try? Self.makeContexts(material, verifier: self.makeVerifier) else {
            return cached
        }
        self.cache.withLock { $0 = built }
        return built
    }

    static func makeContexts(_ material: TLSMaterial, verifier: VerifierFactory? = nil) throws -> Contexts {
        let chain = try NIOSSLCertificate.fromPEMBytes(Array(material.certificateChainPEM.utf8))
        let key = try NIOSSLPrivateKey(bytes: Array(material.privateKeyPEM.utf8), format: .pem)
        let roots = try NIOSSLCertificate.fromPEMBytes(Array(material.trustRootsPEM.utf8))
        guard !chain.isEmpty, !roots.isEmpty else {
            throw PeerIdentityError(.malformed, "empty certificate chain or trust bundle")
        }
        func configure(_ configuration: inout TLSConfiguration, alpn: [String]) {
            configuration.minimumTLSVersion = .tlsv13
            // Verified by the custom callback (chain against the bundle, SPIFFE ID); also what makes a server
            // require the client's certificate.
            configuration.certificateVerification = .noHostnameVerification
            configuration.trustRoots = .certificates(roots)
            configuration.applicationProtocols = alpn
        }
        var server = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configure(&server, alpn: ["h2", "http/1.1"])
        var client = TLSConfiguration.makeClientConfiguration()
        client.certificateChain = chain.map { .certificate($0) }
        client.privateKey = .privateKey(key)
        configure(&client, alpn: ["h2"])
        var clientHTTP1 = client
        clientHTTP1.applicationProtocols = ["http/1.1"]
        let makeVerifier = verifier ?? { try X509PeerIdentityVerifier(trustRootsPEM: $0) }
        return Contexts(
            version: material.version, server: try NIOSSLContext(configuration: server),
            clientHTTP2: try NIOSSLContext(configuration: client),
            clientHTTP1: try NIOSSLContext(configuration: clientHTTP1),
            verifier: try makeVerifier(material.trustRootsPEM))
    }

    /// A server-side handler (inbound); `verified` is told the peer's SPIFFE ID (on the channel's loop) before the
    /// handshake completes, or why it was refused.
    static func serverHandler(
        _ contexts: Contexts, verified: @escaping (Result<String, PeerIdentityError>) -> Void
    ) -> NIOSSLServerHandler {
        let verifier = contexts.verifier
        return NIOSSLServerHandler(context: contexts.server) { certificates, promise in
            Self.verify(certificates, with: verifier, expected: nil, promise: promise, verified: verified)
        }
    }

    /// A client-side handler (outbound) that accepts only a server whose SPIFFE ID is `expected`.
    static func clientHandler(_ contexts: Contexts, http2: Bool, expected: String) throws -> NIOSSLClientHandler {
        let verifier = contexts.verifier
        return try NIOSSLClientHandler(
            context: http2 ? contexts.clientHTTP2 : contexts.clientHTTP1, serverHostname: nil,
            customVerificationCallback: { certificates, promise in
                Self.verify(certificates, with: verifier, expected: expected, promise: promise) { _ in }
            }, configuration: .init())
    }

    /// Runs the verifier once per handshake (off the event loop: it is async) and completes NIOSSL's promise
    /// back on the loop.
    private static func verify(
        _ certificates: [NIOSSLCertificate], with verifier: any PeerIdentityVerifier, expected: String?,
        promise: EventLoopPromise<NIOSSLVerificationResult>,
        verified: @escaping (Result<String, PeerIdentityError>) -> Void
    ) {
        let loop = promise.futureResult.eventLoop
        guard let chain = try? certificates.map({ try $0.toDERBytes() }) else {
            verified(.failure(PeerIdentityError(.malformed, "certificate does not encode")))
            promise.succeed(.failed)
            return
        }
        loop.makeFutureWithTask { () async -> Result<String, PeerIdentityError> in
            do throws(PeerIdentityError) {
                return .success(try await verifier.verify(chain: chain))
            } catch {
                return .failure(error)
            }
        }.assumeIsolated().whenSuccess { result in
            switch result {
            case .success(let identity) where expected == nil || expected == identity:
                verified(.success(identity))
                promise.succeed(.certificateVerified)
            case .success(let identity):
                verified(.failure(PeerIdentityError(.unexpectedIdentity, "\(identity), expected \(expected ?? "")")))
                promise.succeed(.failed)
            case .failure(let error):
                verified(.failure(error))
                promise.succeed(.failed)
            }
        }
    }
}
