import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import Metrics
import NIOPosix
import ServiceLifecycle
import Synchronization
import WeftHTTP
import WeftIdentity
import WeftPush

/// The push stream's gRPC server (port 15012): one `weft.push.v1.ConfigPush/Stream` per proxy, served from a
/// ``PushHub``, and the mesh CA's `weft.identity.v1.Identity/Sign`. Runs in cluster and in manifests mode; every
/// replica serves proxies. On graceful shutdown the streams end (the proxies reconnect, to another replica in a
/// cluster) and the server stops.
///
/// With `tls` (what weft-controller runs) the port speaks TLS 1.3 with the controller's own SVID and asks for a
/// client certificate without requiring one: `Sign` works without (the token is the credential), while a push
/// stream is refused unless the client presented an SVID whose namespace and service account are those of the
/// hello's `proxy_id`. Without `tls` it is plaintext and streams are not checked (tests only).
public final class ConfigPushServer: Service {
    private let host: String
    private let port: Int
    private let hub: PushHub
    private let tls: PushServerTLS?
    private let identity: IdentityService?
    private let logger: Logger
    private let bound = Mutex<Int?>(nil)

    public init(
        host: String = "0.0.0.0", port: Int = 15012, hub: PushHub, tls: PushServerTLS? = nil,
        identity: IdentityService? = nil, logger: Logger
    ) {
        self.host = host
        self.port = port
        self.hub = hub
        self.tls = tls
        self.identity = identity
        self.logger = logger
    }

    /// The port actually bound (useful with port 0), once listening.
    public var listeningPort: Int? { self.bound.withLock { $0 } }

    public func run() async throws {
        var config = HTTP2ServerTransport.Posix.Config.defaults
        // PINGs on idle streams, and the proxies' own PINGs (every 30 s) allowed.
        config.connection.keepalive = .init(
            time: .seconds(60), timeout: .seconds(20),
            clientBehavior: .init(minPingIntervalWithoutCalls: .seconds(10), allowWithoutCalls: true))
        var services: [any RegistrableRPCService] = [
            ConfigPushService(hub: self.hub, peers: self.tls?.peers, logger: self.logger)
        ]
        if let identity = self.identity { services.append(identity) }
        if let tls = self.tls {
            let factory = PushServerListenerFactory(
                host: self.host, port: self.port, tls: tls, eventLoopGroup: MultiThreadedEventLoopGroup.singleton)
            let transport = HTTP2ServerTransport.Custom(
                listenerFactory: factory,
                config: .init(
                    compression: config.compression, connection: config.connection, http2: config.http2,
                    rpc: config.rpc, channelDebuggingCallbacks: config.channelDebuggingCallbacks))
            // The custom transport is not a `ListeningServerTransport`: its address comes from the transport.
            try await self.serve(GRPCServer(transport: transport, services: services)) {
                await transport.listeningAddress
            }
        } else {
            let transport = HTTP2ServerTransport.Posix(
                address: .ipv4(host: self.host, port: self.port), transportSecurity: .plaintext, config: config)
            try await self.serve(GRPCServer(transport: transport, services: services)) {
                try await transport.listeningAddress
            }
        }
    }

    private func serve<Transport: ServerTransport>(
        _ server: GRPCServer<Transport>,
        listening: @escaping @Sendable () async throws -> GRPCNIOTransportHTTP2.SocketAddress?
    ) async throws {
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask {
                // grpc-swift's accept loop must not be cancelled while a proxy connects (NIO traps on a
                // connection dropped unserved: see `CancellationSafeServing`): cancellation is a graceful
                // shutdown, forced only if that has not finished 5 s later.
                try await CancellationSafeServing.shielded {
                    try await withGracefulShutdownHandler {
                        try await server.serve()
                    } onGracefulShutdown: {
                        self.hub.closeAll()
                        server.beginGracefulShutdown()
                    }
                } onCancel: {
                    self.hub.closeAll()
                    server.beginGracefulShutdown()
                }
            }
            if let address = try await listening()?.ipv4 {
                self.bound.withLock { $0 = address.port }
                self.logger.info(
                    "push server listening",
                    metadata: ["push.port": "\(address.port)", "push.tls": "\(self.tls != nil)"])
            }
        }
    }
}

/// `weft.push.v1.ConfigPush`: reads the proxy's hello, then its answers; writes the configs the hub sends.
struct ConfigPushService: Weft_Push_V1_ConfigPush.SimpleServiceProtocol {
    let hub: PushHub
    /// The verified client identities of a TLS server; nil for a plaintext one (streams are not checked).
    let peers: PeerIdentityRegistry?
    let logger: Logger
    /// Configs sent as deltas (`weft_push_sent_total` counts every config sent).
    let deltas = Counter(label: "weft_push_deltas_total")

    func stream(
        request: RPCAsyncSequence<Weft_Push_V1_ProxyMessage, any Error>,
        response: RPCWriter<Weft_Push_V1_ControllerMessage>, context: ServerContext
    ) async throws {
        var opened: Int?
        defer { opened.map { self.hub.close($0) } }
        do {
            try await withThrowingDiscardingTaskGroup { group in
                for try await message in request.cancelOnGracefulShutdown() {
                    switch message.kind {
                    case .hello(let hello)?:
                        guard opened == nil else {
                            throw RPCError(code: .invalidArgument, message: "a stream has one Hello, first")
                        }
                        guard Self.isProxyID(hello.proxyID) else {
                            throw RPCError(
                                code: .invalidArgument,
                                message: "proxy_id must be namespace/pod, got \"\(hello.proxyID)\"")
                        }
                        if let peers = self.peers {
                            try self.authorize(hello.proxyID, peer: peers.identity(remotePeer: context.remotePeer))
                        }
                        let (id, outbox) = self.hub.open(
                            proxyID: hello.proxyID, running: hello.runningVersion, build: hello.build)
                        opened = id
                        group.addTask {
                            for await outgoing in outbox {
                                let message = try outgoing.message()
                                if case .delta? = message.kind { self.deltas.increment() }
                                try await response.write(message)
                            }
                            // The hub closed the stream (shutdown, or the proxy went away): end the RPC too.
                            throw StreamClosed()
                        }
                    case .ack(let ack)?:
                        let id = try Self.stream(opened)
                        self.hub.acknowledged(id, version: ack.version, nonce: ack.nonce)
                    case .nack(let nack)?:
                        let id = try Self.stream(opened)
                        self.hub.refused(id, version: nack.version, nonce: nack.nonce, error: nack.error)
                    case nil:
                        throw RPCError(code: .invalidArgument, message: "an empty message")
                    }
                }
                // The proxy closed its side, or the server shuts down: end the writer too.
                opened.map { self.hub.close($0) }
            }
        } catch is StreamClosed {
            // Ended by the controller: a clean end of the RPC; the proxy reconnects.
        }
    }

    /// A stream's proxy must be the client's workload: its SVID names the namespace of `proxyID` and the service
    /// account the compiled config gives that pod. A proxy the controller has not compiled a config for is refused
    /// too (it retries with backoff until its pod is known).
    func authorize(_ proxyID: String, peer: SpiffeID?) throws {
        guard let peer else {
            throw RPCError(
                code: .permissionDenied, message: "a push stream needs a client certificate (the proxy's SVID)")
        }
        let namespace = proxyID.split(separator: "/").first.map(String.init)
        guard peer.namespace == namespace else {
            throw RPCError(
                code: .permissionDenied, message: "\(peer) may not stream the config of \(proxyID) (another namespace)")
        }
        guard let expected = self.hub.identity(of: proxyID) else {
            throw RPCError(code: .permissionDenied, message: "the controller knows no workload \(proxyID) (yet)")
        }
        guard expected == peer.description else {
            throw RPCError(
                code: .permissionDenied,
                message: "\(peer) may not stream the config of \(proxyID), whose identity is \(expected)")
        }
    }

    private struct StreamClosed: Error {}

    private static func stream(_ opened: Int?) throws -> Int {
        guard let id = opened else {
            throw RPCError(code: .failedPrecondition, message: "the first message must be a Hello")
        }
        return id
    }

    static func isProxyID(_ id: String) -> Bool {
        let parts = id.split(separator: "/", omittingEmptySubsequences: false)
        return parts.count == 2 && parts.allSatisfy { !$0.isEmpty && $0.count <= 253 }
    }
}
