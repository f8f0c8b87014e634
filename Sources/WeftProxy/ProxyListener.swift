import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A proxy listener (outbound or inbound): each connection starts with a `DownstreamGuard` that detects
/// HTTP/1.1, h2c or opaque TCP. The request path runs entirely in channel handlers on the
/// connection's event loop; this `Service` only binds, and on graceful shutdown stops accepting, lets each
/// connection finish its in-flight request (`ChannelShouldQuiesceEvent`), and closes what is left after
/// `drainTimeout`.
public final class ProxyListener: Service {
    struct ProxyListenerError: Error, CustomStringConvertible {
        var message: String
        var description: String { self.message }
    }

    private let hosts: [String]
    private let port: Int
    private let shared: ProxyListenerContext
    private let group: any EventLoopGroup
    private let drainTimeout: Duration
    /// The proxy's listener ports: a captured connection meant for one of them is refused (a loop).
    private let proxyPorts: Set<Int>
    private let logger: Logger
    private let boundPort = Mutex<Int?>(nil)
    private let connections = Mutex<[ObjectIdentifier: any Channel]>([:])

    /// - Parameter host: The address to bind, or several separated by commas (`0.0.0.0,::`: both families).
    public init(
        direction: ProxyDirection, host: String = "127.0.0.1", port: Int, store: ProxyStateStore,
        metrics: ProxyMetrics, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        limits: ProxyLimits = ProxyLimits(), accessLog: AccessLog? = nil, tracer: ProxyTracer? = nil,
        drainTimeout: Duration = .seconds(5), meshTLS: MeshTLS? = nil, overload: OverloadManager? = nil,
        proxyPorts: Set<Int> = [], logger: Logger
    ) {
        self.proxyPorts = proxyPorts
        self.hosts = host.split(separator: ",").map { String($0.filter { !$0.isWhitespace }) }.filter { !$0.isEmpty }
        self.port = port
        self.shared = ProxyListenerContext(
            direction: direction, store: store, metrics: metrics, runtimes: ClusterRuntimes(group: group),
            pools: UpstreamPools(group: group, decoderLimits: limits.decoderLimits, meshTLS: meshTLS), limits: limits,
            accessLog: accessLog, tracer: tracer, meshTLS: meshTLS, overload: overload ?? OverloadManager(limits))
        self.group = group
        self.drainTimeout = drainTimeout
        self.logger = logger
        store.listenerMade()
    }

    /// The port actually bound (useful with port 0), once listening.
    public var listeningPort: Int? { self.boundPort.withLock { $0 } }

    public func run() async throws {
        let shared = self.shared
        let bootstrap = ServerBootstrap(group: self.group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 1024)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            // Each connection keeps its receive buffer between reads (NIO pools it per channel): start it at 512
            // bytes, not 2 KiB, so an idle keep-alive connection costs 1.5 KiB less; it grows when reads fill it.
            // (A refused request's unread rest no longer resets the answer: see `lingeringClose`.)
            .childChannelOption(
                .recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 512, maximum: 65536)
            )
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
        let servers = try await self.bind(bootstrap)
        self.boundPort.withLock { $0 = servers.first?.localAddress?.port }
        shared.metrics.lifecycle.listener(shared.direction, bound: true)
        shared.store.listener(bound: true)
        defer {
            shared.metrics.lifecycle.listener(shared.direction, bound: false)
            shared.store.listener(bound: false)
        }
        self.logger.info(
            "listening",
            metadata: [
                "proxy.direction": "\(shared.direction.rawValue)",
                "proxy.port": "\(servers.first?.localAddress?.port ?? self.port)",
                "proxy.addresses": "\(servers.compactMap { $0.localAddress?.ipAddress })",
            ])
        let closeAll: @Sendable () -> Void = { for server in servers { server.close(promise: nil) } }
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                for server in servers { try? await server.closeFuture.get() }
            } onGracefulShutdown: {
                closeAll()
            }
        } onCancel: {
            closeAll()
        }
        await self.drain()
    }

    /// Binds every address of `hosts` on one port (the first one's, when `port` is 0). An IPv6 address listens
    /// for IPv6 only (`IPV6_V6ONLY`), so `0.0.0.0` and `::` share the port, each connection in its own family
    /// (no IPv4-mapped addresses in authorization or `x-forwarded-for`); on a host without IPv6 the IPv6
    /// addresses are skipped with a warning, as long as one address is bound.
    private func bind(_ bootstrap: ServerBootstrap) async throws -> [any Channel] {
        var servers: [any Channel] = []
        do {
            for host in self.hosts {
                let port = servers.first?.localAddress?.port ?? self.port
                let isIPv6 = host.utf8.contains(UInt8(ascii: ":"))
                let options =
                    isIPv6
                    ? bootstrap.serverChannelOption(
                        ChannelOptions.Types.SocketOption(level: .ipv6, name: .ipv6_v6only), value: 1)
                    : bootstrap
                do {
                    servers.append(try await options.bind(host: host, port: port).get())
                } catch let error as IOError
                    where isIPv6 && [EAFNOSUPPORT, EADDRNOTAVAIL].contains(error.errnoCode) && self.hosts.count > 1
                {
                    self.logger.warning(
                        "IPv6 is not available: not listening on \(host)",
                        metadata: ["proxy.direction": "\(self.shared.direction.rawValue)", "error": "\(error)"])
                }
            }
        } catch {
            for server in servers { try? await server.close() }
            throw error
        }
        guard !servers.isEmpty else {
            throw ProxyListenerError(message: "no address of \(self.hosts) could be bound")
        }
        return servers
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
        // One task per event loop tells all of its connections in one turn of the loop: once any of them reacts
        // (an idle one closes), the others on that loop have been told too.
        var byLoop: [ObjectIdentifier: (loop: any EventLoop, channels: [any Channel])] = [:]
        for channel in self.connections.withLock({ Array($0.values) }) {
            byLoop[ObjectIdentifier(channel.eventLoop), default: (channel.eventLoop, [])].channels.append(channel)
        }
        for (loop, channels) in byLoop.values {
            loop.execute {
                for channel in channels {
                    channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
                }
            }
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
