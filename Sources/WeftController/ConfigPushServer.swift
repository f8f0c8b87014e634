import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import ServiceLifecycle
import Synchronization
import WeftPush

/// The push stream's gRPC server (port 15012): one `weft.push.v1.ConfigPush/Stream` per proxy, served from a
/// ``PushHub``. Runs in cluster and in manifests mode; every replica serves proxies. On graceful shutdown the
/// streams end (the proxies reconnect, to another replica in a cluster) and the server stops.
public final class ConfigPushServer: Service {
    private let host: String
    private let port: Int
    private let hub: PushHub
    private let logger: Logger
    private let bound = Mutex<Int?>(nil)

    public init(host: String = "0.0.0.0", port: Int = 15012, hub: PushHub, logger: Logger) {
        self.host = host
        self.port = port
        self.hub = hub
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
        let transport = HTTP2ServerTransport.Posix(
            address: .ipv4(host: self.host, port: self.port), transportSecurity: .plaintext, config: config)
        let server = GRPCServer(transport: transport, services: [ConfigPushService(hub: self.hub, logger: self.logger)])
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask {
                try await withGracefulShutdownHandler {
                    try await server.serve()
                } onGracefulShutdown: {
                    self.hub.closeAll()
                    server.beginGracefulShutdown()
                }
            }
            if let address = try await server.listeningAddress?.ipv4 {
                self.bound.withLock { $0 = address.port }
                self.logger.info("push server listening", metadata: ["push.port": "\(address.port)"])
            }
        }
    }
}

/// `weft.push.v1.ConfigPush`: reads the proxy's hello, then its answers; writes the configs the hub sends.
struct ConfigPushService: Weft_Push_V1_ConfigPush.SimpleServiceProtocol {
    let hub: PushHub
    let logger: Logger

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
                        let (id, outbox) = self.hub.open(
                            proxyID: hello.proxyID, running: hello.runningVersion, build: hello.build)
                        opened = id
                        group.addTask {
                            for await outgoing in outbox { try await response.write(try outgoing.message()) }
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
