import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ProxyConfig
import ServiceLifecycle
import WeftProxy

/// Builders for small configs.
enum TestConfig {
    static let identity = ProxyIdentity(
        id: "shop/client", namespace: "shop", name: "client", serviceAccount: "default",
        spiffeID: "spiffe://cluster.local/ns/shop/sa/default", trustDomain: "cluster.local",
        addresses: ["127.0.0.1"])

    static func cluster(
        _ name: String, protocol: AppProtocol = .http1, ports: [Int], address: String = "127.0.0.1"
    ) -> Cluster {
        Cluster(
            name: name, service: "\(name).shop.svc.cluster.local", port: 80, protocol: `protocol`,
            loadBalancer: LoadBalancer(policy: .roundRobin),
            limits: ConnectionLimits(
                maxConnections: 100, maxPendingRequests: 100, maxRequestsPerConnection: 0,
                // Generous: a loopback connect to a closed port is refused at once, whatever the timeout. With 1 s,
                // five tests of one CI run got upstream_connect_failure while the 10,000-connection test loaded
                // both cores beside them.
                connectTimeoutMs: 10_000, idleTimeoutMs: 60_000),
            retryBudget: RetryBudget(percent: 20, minRetriesPerSecond: 10),
            endpoints: ports.map { Endpoint(address: address, port: $0) })
    }

    static func service(_ name: String, protocol: AppProtocol = .http1, routes: [Route]) -> OutboundService {
        OutboundService(
            host: "\(name).shop.svc.cluster.local", aliases: [name, "\(name).shop", "\(name).shop.svc"], port: 80,
            protocol: `protocol`, routes: routes)
    }

    static func forward(_ name: String = "default", to cluster: String, matches: [RequestMatch] = []) -> Route {
        Route(
            name: name, matches: matches,
            forward: ForwardAction(backends: [WeightedCluster(cluster: cluster, weight: 100)]))
    }

    static func config(
        outbound: [OutboundService], clusters: [Cluster], inbound: [InboundPort] = []
    ) -> ProxyConfig {
        let config = ProxyConfig(proxy: identity, inbound: inbound, outbound: outbound, clusters: clusters)
        return (try? config.versioned()) ?? config
    }
}

/// The proxy's listeners on ephemeral ports, run in a ServiceGroup for the duration of `body`.
struct ProxyHarness {
    let store: ProxyStateStore
    let metrics: ProxyMetrics
    let outboundPort: Int
    let inboundPort: Int
    let adminPort: Int
    /// The process-wide caps both listeners share.
    let overload: OverloadManager

    /// The proxy's limits, except a generous connect timeout to the app (inbound): a loopback connect to a closed
    /// port is refused at once whatever the timeout, and with 1 s an inbound test once got
    /// `upstream_connect_failure` while other tests loaded both cores (as `TestConfig.cluster`'s clusters did).
    static let limits = ProxyLimits(appConnectTimeout: .seconds(10))

    /// With `singleEventLoop`, the listeners run on one event loop of their own: pools, limits and balancer
    /// state are per loop, so every request then shares them.
    static func withProxy<T: Sendable>(
        config: ProxyConfig?,
        watching path: String? = nil,
        singleEventLoop: Bool,
        limits: ProxyLimits = ProxyHarness.limits,
        _ body: @Sendable (ProxyHarness) async throws -> T
    ) async throws -> T {
        let loop = singleEventLoop ? MultiThreadedEventLoopGroup(numberOfThreads: 1) : nil
        do {
            let result = try await Self.withProxy(config: config, watching: path, group: loop, limits: limits, body)
            try? await loop?.shutdownGracefully()
            return result
        } catch {
            try? await loop?.shutdownGracefully()
            throw error
        }
    }

    static func withProxy<T: Sendable>(
        config: ProxyConfig?,
        watching path: String? = nil,
        group: (any EventLoopGroup)? = nil,
        limits: ProxyLimits = ProxyHarness.limits,
        accessLog: AccessLog? = nil,
        meshTLS: MeshTLS? = nil,
        listen: String = "127.0.0.1",
        _ body: @Sendable (ProxyHarness) async throws -> T
    ) async throws -> T {
        let logger = Logger(label: "weft.proxy.test")
        let store = ProxyStateStore()
        if let config {
            let data = try config.encoded()
            store.replace(with: try ProxyState.load(data))
        }
        let metrics = ProxyMetrics()
        let loops = group ?? MultiThreadedEventLoopGroup.singleton
        let overload = OverloadManager(limits)
        let outbound = ProxyListener(
            direction: .outbound, host: listen, port: 0, store: store, metrics: metrics, group: loops, limits: limits,
            accessLog: accessLog, meshTLS: meshTLS, overload: overload, logger: logger)
        let inbound = ProxyListener(
            direction: .inbound, host: listen, port: 0, store: store, metrics: metrics, group: loops, limits: limits,
            accessLog: accessLog, meshTLS: meshTLS, overload: overload, logger: logger)
        let admin = AdminServer(port: 0, store: store, metrics: metrics, logger: logger)
        var services: [any Service] = [outbound, inbound, admin]
        if let accessLog {
            services.append(accessLog)
        }
        if let path {
            services.append(
                ConfigFileWatcher(path: path, store: store, interval: .milliseconds(50), logger: logger))
        }
        let group = ServiceGroup(services: services, logger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            defer { tasks.cancelAll() }
            var ports: (Int, Int, Int)?
            for _ in 0..<500 {
                if let o = outbound.listeningPort, let i = inbound.listeningPort, let a = admin.listeningPort {
                    ports = (o, i, a)
                    break
                }
                try await Task.sleep(for: .milliseconds(10))
            }
            guard let (o, i, a) = ports else {
                throw HarnessError(message: "listeners did not bind")
            }
            let harness = ProxyHarness(
                store: store, metrics: metrics, outboundPort: o, inboundPort: i, adminPort: a, overload: overload)
            do {
                let result = try await body(harness)
                await group.triggerGracefulShutdown()
                return result
            } catch {
                await group.triggerGracefulShutdown()
                throw error
            }
        }
    }

    func get(
        _ path: String, host: String, port: Int? = nil, headers: [(String, String)] = [], method: HTTPMethod = .GET,
        body: ByteBuffer? = nil
    ) async throws -> TestResponse {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port ?? self.outboundPort)\(path)")
        request.method = method
        request.headers.replaceOrAdd(name: "host", value: host)
        for (name, value) in headers {
            request.headers.add(name: name, value: value)
        }
        if let body {
            request.body = .bytes(body)
        }
        return try await TestResponse.execute(request, client: testClient)
    }
}

struct HarnessError: Error {
    var message: String
}

/// A response read whole.
struct TestResponse: Sendable {
    var status: Int
    var headers: HTTPHeaders
    var body: ByteBuffer

    var reason: String? { self.headers.first(name: "x-weft-reason") }
    var server: String? { self.headers.first(name: "x-echo-server") }

    /// `timeout` bounds the whole exchange; a request the test holds at its upstream (`/hold`) while it does
    /// other things needs more than the default, which a loaded machine can spend before the test releases it.
    static func execute(
        _ request: HTTPClientRequest, client: HTTPClient, timeout: TimeAmount = .seconds(10)
    ) async throws -> TestResponse {
        let response = try await client.execute(request, timeout: timeout)
        let body = try await response.body.collect(upTo: 4 << 20)
        return TestResponse(status: Int(response.status.code), headers: response.headers, body: body)
    }
}

/// One client for every test: no redirects followed.
let testClient = HTTPClient(
    eventLoopGroupProvider: .singleton,
    configuration: HTTPClient.Configuration(redirectConfiguration: .disallow))

/// Starts upstreams named `names` (those in `statuses` answer every request with that status), runs `body`,
/// stops them.
func withUpstreams<T: Sendable>(
    _ names: [String], statuses: [String: Int] = [:], delays: [String: Int] = [:],
    _ body: @Sendable ([TestUpstream]) async throws -> T
) async throws -> T {
    var upstreams: [TestUpstream] = []
    for name in names {
        upstreams.append(try await TestUpstream.start(name: name, status: statuses[name], delayMs: delays[name]))
    }
    let started = upstreams
    do {
        let result = try await body(started)
        for upstream in started { await upstream.stop() }
        return result
    } catch {
        for upstream in started { await upstream.stop() }
        throw error
    }
}
