import NIOCore
import NIOHTTP1
import NIOPosix
import ProxyConfig

/// Where a connection captured by `weft-proxy init`'s REDIRECT rules was going: its original destination.
struct CapturedDestination: Sendable, Hashable {
    /// The IP as text (`10.96.0.10`, `fd00::1`).
    var host: String
    var port: Int

    /// `host:port`, brackets around an IPv6 address: the authority the route table resolves.
    var authority: String { self.host.contains(":") ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)" }
}

/// What a listener makes of a newly accepted connection, from its original destination.
enum CaptureClassification: Equatable {
    /// Not redirected (no original destination, or the listener's own address): explicit mode, as today.
    case explicit
    /// Redirected: route by the original destination.
    case captured(CapturedDestination)
    /// Redirected, but meant for one of the proxy's own listener ports: refused, it could only loop.
    case loop

    /// Classifies a connection from its original destination, its local address and the proxy's listener ports.
    static func classify(original: SocketAddress?, local: SocketAddress?, proxyPorts: Set<Int>) -> Self {
        guard let original, let port = original.port, let host = original.ipAddress else {
            return .explicit
        }
        if let local, local.port == port, local.ipAddress == host {
            return .explicit
        }
        if proxyPorts.contains(port) || local?.port == port {
            return .loop
        }
        return .captured(CapturedDestination(host: host, port: port))
    }

    /// Reads `channel`'s original destination (on its event loop) and classifies it.
    static func read(_ channel: any Channel, proxyPorts: Set<Int>) -> EventLoopFuture<Self> {
        #if canImport(Glibc)
        OriginalDestination.read(channel).map { original in
            Self.classify(original: original, local: channel.localAddress, proxyPorts: proxyPorts)
        }
        #else
        channel.eventLoop.makeSucceededFuture(.explicit)
        #endif
    }
}

/// A captured connection refused at accept (a loop).
struct CaptureLoopError: Error {}

/// What the outbound listener does with a captured connection, decided when it is accepted.
enum CapturedOutbound {
    /// A mesh service on an HTTP (or `detect`) port: detect the protocol, then route each request with this
    /// service's routes whatever its `Host` header.
    case http(OutboundService)
    /// Opaque TCP to this upstream (mTLS when it has an identity): a TCP service's route, or a mesh endpoint
    /// addressed by its pod IP and port.
    case tcp(UpstreamTarget, lease: EndpointLease?, service: String)
    /// Plain TCP to the original destination (not a mesh destination; `outboundUnknown` passthrough).
    case passthrough(CapturedDestination)
    /// Closed: an unknown destination with `outboundUnknown: refuse`, or a known one without a usable endpoint.
    case refuse
}

extension ProxyState {
    /// The outbound service a captured destination names: one whose cluster IP (an alias) and port are the
    /// destination's.
    func capturedService(_ destination: CapturedDestination) -> OutboundService? {
        let request = RequestInfo(authority: destination.authority, method: "GET", path: "/", headers: [])
        guard let service = self.routeTable.service(for: request), service.port == destination.port else {
            return nil
        }
        return service
    }

    /// Decides a captured outbound connection: its service (HTTP routes, or a TCP route), else a mesh endpoint at
    /// that pod IP and port (TCP to it, with mTLS when it has an identity), else `outboundUnknown`.
    func decideCaptured(
        _ destination: CapturedDestination, runtime: ClusterRuntime, remoteAddress: SocketAddress?
    ) -> CapturedOutbound {
        if let service = self.capturedService(destination) {
            if service.protocol != .tcp, !service.routes.isEmpty {
                return .http(service)
            }
            return self.decideCapturedTCP(service, runtime: runtime, remoteAddress: remoteAddress)
        }
        if let (clusterName, endpoint) = self.endpoint(at: destination),
            let balancer = runtime.balancer(for: clusterName)
        {
            var target = balancer.target(endpoint, downstream: .http1_1)
            target.protocolKind = .http1
            return .tcp(target, lease: nil, service: balancer.cluster.service)
        }
        switch self.config.outboundUnknown ?? .passthrough {
        case .passthrough: return .passthrough(destination)
        case .refuse: return .refuse
        }
    }

    /// Opaque TCP for `service`: its TCP route, or (an HTTP service carrying other bytes, e.g. the app's own TLS)
    /// its catch-all route's backends.
    func decideCapturedTCP(
        _ service: OutboundService, runtime: ClusterRuntime, remoteAddress: SocketAddress?
    ) -> CapturedOutbound {
        let head = HTTPRequestHead(version: .http1_1, method: .CONNECT, uri: "\(service.host):\(service.port)")
        switch self.decideConnect(head, runtime: runtime, remoteAddress: remoteAddress) {
        case .tunnel(var target, let lease, let service):
            target.protocolKind = .http1
            return .tcp(target, lease: lease, service: service)
        case .respond:
            return .refuse
        }
    }

    /// The cluster and endpoint at a pod IP and port, if the config has one (first cluster by name).
    func endpoint(at destination: CapturedDestination) -> (String, Endpoint)? {
        for cluster in self.config.clusters {
            if let endpoint = cluster.endpoints.first(where: {
                $0.port == destination.port && $0.address == destination.host
            }) {
                return (cluster.name, endpoint)
            }
        }
        return nil
    }
}

/// Connects to `target` (mTLS first when it expects an identity) and joins the connection to `downstream` as a
/// byte tunnel; ends `lease` when the upstream closes, closes the downstream when the connection fails.
func connectCapturedTunnel(
    from downstream: TunnelHandler, on loop: any EventLoop, target: UpstreamTarget, lease: EndpointLease?,
    meshTLS: MeshTLS?, onBytes: @escaping (Int) -> Void
) {
    let bound = NIOLoopBound(downstream, eventLoop: loop)
    let onBytesBound = NIOLoopBound(onBytes, eventLoop: loop)
    let leaseBound = NIOLoopBound(lease, eventLoop: loop)
    ClientBootstrap(group: loop)
        .channelOption(.tcpOption(.tcp_nodelay), value: 1)
        .connectTimeout(target.connectTimeout)
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try addMeshTLSIfNeeded(target, meshTLS: meshTLS, to: channel)
                try channel.pipeline.syncOperations.addHandler(TunnelHandler(onBytes: onBytesBound.value))
            }
        }
        .connect(host: target.host, port: target.port)
        .whenComplete { result in
            switch result {
            case .success(let channel):
                if let upstream = try? channel.pipeline.syncOperations.handler(type: TunnelHandler.self) {
                    channel.closeFuture.whenComplete { _ in leaseBound.value?.end() }
                    TunnelHandler.join(bound.value, upstream)
                } else {
                    leaseBound.value?.end()
                    channel.close(promise: nil)
                    bound.value.close()
                }
            case .failure:
                leaseBound.value?.end()
                bound.value.close()
            }
        }
}

extension CapturedOutbound {
    /// Where an opaque tunnel goes, and the endpoint hold it releases; nil for `http` and `refuse`.
    var tunnel: (target: UpstreamTarget, lease: EndpointLease?)? {
        switch self {
        case .tcp(let target, let lease, _):
            return (target, lease)
        case .passthrough(let destination):
            let target = UpstreamTarget(
                host: destination.host, port: destination.port, protocolKind: .http1, cluster: "passthrough",
                limits: passthroughLimits, connectTimeout: .seconds(1))
            return (target, nil)
        case .http, .refuse:
            return nil
        }
    }
}

private let passthroughLimits = ConnectionLimits(
    maxConnections: 0, maxPendingRequests: 0, maxRequestsPerConnection: 0, connectTimeoutMs: 1000,
    idleTimeoutMs: 60_000)

extension ProxyConfig {
    /// The inbound port a connection serves: with capture, the entry for its original destination port (a port
    /// the config does not list is opaque TCP to the app on that port, PERMISSIVE, no authorization); without,
    /// the first entry (explicit mode).
    func inboundPort(captured: CapturedDestination?) -> InboundPort? {
        guard let captured else {
            return self.inbound.first
        }
        if let port = self.inbound.first(where: { $0.port == captured.port }) {
            return port
        }
        return InboundPort(port: captured.port, protocol: .tcp, tls: .permissive, appPort: captured.port)
    }
}
