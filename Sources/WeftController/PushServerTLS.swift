import Foundation
import GRPCNIOTransportHTTP2
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization
import WeftIdentity

/// TLS for the controller's gRPC port (15012): the controller's own SVID, issued by the mesh CA and re-issued at
/// about half its lifetime (new connections get the new one), TLS 1.3 only, ALPN `h2`.
///
/// A client certificate is requested but not required (`Sign` is how a proxy gets its first one). When a client
/// presents one, the handshake verifies it with WeftIdentity's ``SVIDVerifier`` against the mesh trust bundle; a
/// chain that does not verify fails the handshake. The verified SPIFFE ID is recorded in ``peers`` under the
/// connection's remote address, which is how an RPC (`ConfigPush/Stream`) learns who its caller is.
public final class PushServerTLS: Sendable {
    private struct Current {
        var context: NIOSSLContext
        var renewAt: Date
    }

    let ca: MeshCA
    let peers = PeerIdentityRegistry()
    private let verifier: SVIDVerifier
    private let rotation: RotationPolicy
    private let current: Mutex<Current>

    /// Issues the controller's first certificate.
    public init(ca: MeshCA, rotation: RotationPolicy = RotationPolicy(maximumJitter: 0)) throws {
        self.ca = ca
        self.rotation = rotation
        self.verifier = SVIDVerifier(bundle: ca.authority.trustBundle)
        self.current = Mutex(try Self.make(ca: ca, rotation: rotation))
    }

    /// The serving context; a fresh certificate once the current one is due for renewal.
    func context() -> NIOSSLContext {
        let now = self.ca.now()
        return self.current.withLock { current in
            if now >= current.renewAt, let renewed = try? Self.make(ca: self.ca, rotation: self.rotation) {
                current = renewed
            }
            return current.context
        }
    }

    private static func make(ca: MeshCA, rotation: RotationPolicy) throws -> Current {
        let (certificate, keyPEM) = try ca.issueControllerCertificate()
        let chain = try NIOSSLCertificate.fromPEMBytes(Array(certificate.fullChainPEM.utf8))
        let roots = try NIOSSLCertificate.fromPEMBytes(Array(ca.trustBundlePEM.utf8))
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(keyPEM.utf8), format: .pem)))
        configuration.minimumTLSVersion = .tlsv13
        configuration.certificateVerification = .optionalVerification
        configuration.trustRoots = .certificates(roots)
        configuration.applicationProtocols = ["grpc-exp", "h2"]
        let schedule = rotation.schedule(for: certificate, jitter: 0)
        return Current(context: try NIOSSLContext(configuration: configuration), renewAt: schedule.renewAt)
    }

    /// The server-side TLS handler of one connection: verifies a presented client SVID and records its identity.
    func handler(for channel: any Channel) -> NIOSSLServerHandler {
        let key = channel.remoteAddress.map { PeerIdentityRegistry.key(for: $0) }
        let token = ObjectIdentifier(channel)
        let peers = self.peers
        let verifier = self.verifier
        let now = self.ca.now
        if let key {
            channel.closeFuture.whenComplete { _ in peers.remove(key, token: token) }
        }
        return NIOSSLServerHandler(context: self.context()) { certificates, promise in
            let chain = certificates.compactMap { try? $0.toDERBytes() }
            promise.completeWithTask {
                guard chain.count == certificates.count,
                    let identity = try? await verifier.verify(derChain: chain, now: now())
                else { return .failed }
                if let key { peers.record(identity, for: key, token: token) }
                return .certificateVerified
            }
        }
    }
}

/// Verified client SPIFFE IDs by connection (`ipv4:HOST:PORT`, the form of gRPC's `ServerContext.remotePeer`).
final class PeerIdentityRegistry: Sendable {
    private let identities = Mutex<[String: (identity: SpiffeID, token: ObjectIdentifier)]>([:])

    static func key(for address: NIOCore.SocketAddress) -> String {
        switch address {
        case .v4: "ipv4:\(address.ipAddress ?? ""):\(address.port ?? 0)"
        case .v6: "ipv6:[\(address.ipAddress ?? "")]:\(address.port ?? 0)"
        case .unixDomainSocket: "unix:\(address.pathname ?? "")"
        }
    }

    func record(_ identity: SpiffeID, for key: String, token: ObjectIdentifier) {
        self.identities.withLock { $0[key] = (identity, token) }
    }

    func remove(_ key: String, token: ObjectIdentifier) {
        self.identities.withLock { identities in
            if identities[key]?.token == token { identities[key] = nil }
        }
    }

    /// The verified identity of the connection an RPC came on; nil when it presented no certificate.
    func identity(remotePeer: String) -> SpiffeID? {
        self.identities.withLock { $0[remotePeer]?.identity }
    }
}

/// The gRPC listener with ``PushServerTLS``: grpc-swift-nio-transport's own TLS options cannot request a client
/// certificate without requiring one, so the server binds through this factory (`HTTP2ServerTransport.Custom`).
struct PushServerListenerFactory: HTTP2ServerTransport.ListenerFactory {
    let host: String
    let port: Int
    let tls: PushServerTLS
    let eventLoopGroup: any EventLoopGroup

    func makeListeningChannel(
        listenerConfigurator: HTTP2ServerTransport.ListenerConfigurator,
        connectionConfigurator: HTTP2ServerTransport.ConnectionConfigurator
    ) async throws -> NIOAsyncChannel<HTTP2ServerTransport.ConnectionConfigurator.ConnectionChannel, Never> {
        let tls = self.tls
        return try await ServerBootstrap(group: self.eventLoopGroup)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in listenerConfigurator.configure(channel: channel) }
            .bind(host: self.host, port: self.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(tls.handler(for: channel))
                }.flatMap {
                    connectionConfigurator.configure(channel: channel, tls: .configured(requireALPN: false))
                }
            }
    }
}
