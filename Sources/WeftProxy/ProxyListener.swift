import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization

/// A proxy listener (outbound or inbound): each connection starts with a `DownstreamGuard` that detects
/// HTTP/1.1, h2c or opaque TCP. The request path runs entirely in channel handlers on the
/// connection's event loop; this `Service` only binds, and on graceful shutdown stops accepting, lets each
/// connection finish its in-flight request (`ChannelShouldQuiesceEvent`), and closes what is left after
/// `drainTimeout`.
public final class ProxyListener: Service {
    private let host: String
    private let port: Int
    private let shared: ProxyListenerContext
    private let group: any EventLoopGroup
    private let drainTimeout: Duration
    /// The proxy's listener ports: a captured connection meant for one of them is refused (a loop).
    private let proxyPorts: Set<Int>
    private let logger: Logger
    private let boundPort = Mutex<Int?>(nil)
    private let connections = Mutex<[ObjectIdentifier: any Channel]>([:])

    public init(
        direction: ProxyDirection, host: String = "127.0.0.1", port: Int, store: ProxyStateStore,
        metrics: ProxyMetrics, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        limits: ProxyLimits = ProxyLimits(), accessLog: AccessLog? = nil, tracer: ProxyTracer? = nil,
        drainTimeout: Duration = .seconds(5), meshTLS: MeshTLS? = nil, overload: OverloadManager? = nil,
        proxyPorts: Set<Int> = [], logger: Logger
    ) {
        self.proxyPorts = proxyPorts
        self.host = host
        self.port = port
        self.shared = ProxyListenerContext(
            direction: direction, store: store, metrics: metrics, runtimes: ClusterRuntimes(group: group),
            pools: UpstreamPools(group: group, decoderLimits: limits.decoderLimits, meshTLS: meshTLS), limits: limits,
            accessLog: accessLog, tracer: tracer, meshTLS: meshTLS, overload: overload ?? OverloadManager(limits))
        self.group = group
        self.drainTimeout = drainTimeout
        self.logger = logger
    }

    /// The port actually bound (useful with port 0), once listening.
    public var listeningPort: Int? { self.boundPort.withLock { $0 } }

    public func run() async throws {
        let shared = self.shared
        let server = try await ServerBootstrap(group: self.group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 1024)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [self] channel in
                guard shared.overload.admitConnection() else {
                    return DownstreamAdmission.refuse(channel, shared)
                }
                self.track(channel)
                return CaptureClassification.read(channel, proxyPorts: self.proxyPorts).flatMapThrowing { capture in
                    var connection = shared
                    switch capture {
                    case .explicit: break
                    case .captured(let destination): connection.captured = destination
                    case .loop:
                        shared.metrics.recordTCPRejected(shared.direction)
                        throw CaptureLoopError()
                    }
                    try channel.pipeline.syncOperations.addHandler(DownstreamGuard(connection))
                }
            }
            .bind(host: self.host, port: self.port).get()
        self.boundPort.withLock { $0 = server.localAddress?.port }
        shared.metrics.lifecycle.listener(shared.direction, bound: true)
        defer { shared.metrics.lifecycle.listener(shared.direction, bound: false) }
        self.logger.info(
            "listening",
            metadata: [
                "proxy.direction": "\(shared.direction.rawValue)",
                "proxy.port": "\(server.localAddress?.port ?? self.port)",
            ])
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                try? await server.closeFuture.get()
            } onGracefulShutdown: {
                server.close(promise: nil)
            }
        } onCancel: {
            server.close(promise: nil)
        }
        await self.drain()
    }

    private func track(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        let lifecycle = self.shared.metrics.lifecycle
        let direction = self.shared.direction
        self.connections.withLock { $0[id] = channel }
        lifecycle.connectionOpened(direction)
        channel.closeFuture.whenComplete { [self] _ in
            self.connections.withLock { _ = $0.removeValue(forKey: id) }
            self.shared.overload.connectionClosed()
            lifecycle.connectionClosed(direction)
        }
    }

    /// Asks every connection to close after its in-flight request, waits up to `drainTimeout`, then closes
    /// the rest.
    private func drain() async {
        let open = self.connections.withLock { Array($0.values) }
        for channel in open {
            channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        }
        let deadline = ContinuousClock.now + self.drainTimeout
        while ContinuousClock.now < deadline, !Task.isCancelled, self.connections.withLock({ !$0.isEmpty }) {
            try? await Task.sleep(for: .milliseconds(20))
        }
        let left = self.connections.withLock { Array($0.values) }
        for channel in left {
            channel.close(promise: nil)
        }
        if !left.isEmpty {
            self.logger.info(
                "closed connections still busy at the drain deadline", metadata: ["connections": "\(left.count)"])
        }
    }
}
