import Foundation
import KubeModel
import Logging
import ProxyConfig
import ServiceLifecycle
import Testing
import WeftCompiler
import WeftController
import WeftProxy

/// The push stream end to end in one process: the controller's hub and gRPC server on 127.0.0.1, and a
/// proxy's push client installing into a real `ProxyStateStore`.
@Suite("Config push: controller to proxy over gRPC", .serialized)
struct PushStreamTests {
    static let proxyID = "shop/client"
    static let logger = Logger(label: "weft.test.push")
    static let route = ResourceRef(kind: "VirtualService", namespace: "shop", name: "catalog")

    /// A config for the test proxy whose route sends catalog to `port`; `header` is a request header value it
    /// sets (one with CR LF makes the proxy refuse the config).
    static func config(port: Int, header: String = "1") -> ProxyConfig {
        let identity = ProxyIdentity(
            id: proxyID, namespace: "shop", name: "client", serviceAccount: "default",
            spiffeID: "spiffe://cluster.local/ns/shop/sa/default", trustDomain: "cluster.local",
            addresses: ["127.0.0.1"])
        let cluster = Cluster(
            name: "catalog", service: "catalog.shop.svc.cluster.local", port: 80, protocol: .http1,
            loadBalancer: LoadBalancer(policy: .roundRobin),
            limits: ConnectionLimits(
                maxConnections: 10, maxPendingRequests: 10, maxRequestsPerConnection: 0, connectTimeoutMs: 1000,
                idleTimeoutMs: 60_000),
            retryBudget: RetryBudget(percent: 20, minRetriesPerSecond: 10),
            endpoints: [Endpoint(address: "127.0.0.1", port: port)])
        let route = Route(
            name: "default",
            forward: ForwardAction(
                backends: [WeightedCluster(cluster: "catalog", weight: 100)],
                requestHeaders: HeaderOperations(set: [HeaderValue(name: "x-canary", value: header)])))
        let service = OutboundService(
            host: "catalog.shop.svc.cluster.local", aliases: ["catalog"], port: 80, protocol: .http1,
            routes: [route])
        let config = ProxyConfig(proxy: identity, outbound: [service], clusters: [cluster])
        return (try? config.versioned()) ?? config
    }

    /// A compile result with that config and one VirtualService (generation `generation`) affecting the proxy.
    static func result(_ config: ProxyConfig, generation: Int64) -> CompileResult {
        let accepted = meta.v1.Condition(
            type: "Accepted", status: .true, observedGeneration: generation, reason: "Accepted", message: "ok")
        return CompileResult(
            proxies: [proxyID: config],
            statuses: [
                route: ResourceStatus(generation: generation, conditions: [accepted], affectedProxies: ["shop/*"])
            ])
    }

    /// Runs a hub's compile stage and returns the resource's `Programmed` condition.
    @discardableResult
    static func compile(_ hub: PushHub, _ config: ProxyConfig, generation: Int64) async -> meta.v1.Condition? {
        var result = Self.result(config, generation: generation)
        await hub.process(&result, snapshot: WeftSnapshot())
        return result.statuses[route]?.condition("Programmed")
    }

    @Test(
        "full config, new versions, NACK keeps the last good config, and a restarted controller resumes without resending"
    )
    func pushLifecycle() async throws {
        let store = ProxyStateStore()
        let hub = PushHub(logger: Self.logger)
        let answers = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        hub.onAnswer { answers.continuation.yield() }
        let server = ConfigPushServer(host: "127.0.0.1", port: 0, hub: hub, logger: Self.logger)
        let v1 = Self.config(port: 1001)
        #expect(await Self.compile(hub, v1, generation: 1)?.reason == "Pending")

        try await withThrowingTaskGroup(of: Void.self) { group in
            let serverGroup = ServiceGroup(configuration: .init(services: [server], logger: Self.logger))
            group.addTask { try await serverGroup.run() }
            let port = try #require(await eventually { server.listeningPort })
            let client = PushClient(
                configuration: .init(
                    host: "127.0.0.1", port: port, proxyID: Self.proxyID, initialBackoff: .milliseconds(20),
                    maximumBackoff: .milliseconds(200)),
                installer: ConfigInstaller(store: store, logger: Self.logger), logger: Self.logger, jitter: { 0.5 })
            group.addTask { try await client.run() }

            // The full config on connect, then ACKed: Programmed once the proxy runs it.
            #expect(await eventually { store.current?.config.version == v1.version } == true)
            #expect(await eventually { hub.proxies.first?.status == .synced } == true)
            #expect(hub.syncedCount == 1)
            #expect(await Self.compile(hub, v1, generation: 1)?.reason == "Programmed")
            #expect(await Self.compile(hub, v1, generation: 1)?.message == "1/1 proxies acknowledged")

            // A new generation that changes the config: pushed, applied, programmed.
            let v2 = Self.config(port: 1002)
            #expect(await Self.compile(hub, v2, generation: 2)?.reason == "Pending")
            #expect(await eventually { store.current?.config.version == v2.version } == true)
            #expect(await eventually { hub.proxies.first?.acknowledged == v2.version } == true)
            // One of its entries changed: it came as a delta, and the proxy rebuilt exactly the new config.
            #expect(client.statistics.deltas == 1)
            #expect(store.current?.config == v2)
            #expect(await Self.compile(hub, v2, generation: 2)?.status == .true)

            // A config the proxy cannot apply: NACKed, the old one keeps serving, the resource says Rejected.
            let bad = Self.config(port: 1003, header: "1\r\nx-injected: yes")
            _ = await Self.compile(hub, bad, generation: 3)
            #expect(await eventually { hub.proxies.first?.status == .nacked } == true)
            #expect(hub.syncedCount == 0)
            #expect(store.current?.config.version == v2.version)
            let rejected = await Self.compile(hub, bad, generation: 3)
            #expect(rejected?.reason == "Rejected")
            #expect(rejected?.message.contains("shop/client:") == true)
            #expect(
                hub.proxies.first?.error?.hasPrefix("invalid_header: ") == true, "\(hub.proxies.first?.error ?? "")")
            #expect(client.statistics.nacks == 1)

            // Fixed again.
            let v4 = Self.config(port: 1004)
            _ = await Self.compile(hub, v4, generation: 4)
            #expect(await eventually { store.current?.config.version == v4.version } == true)
            // The hub has the ACK (the client counts it before sending it).
            #expect(await eventually { hub.proxies.first?.acknowledged == v4.version } == true)
            let acksBefore = client.statistics.acks

            // The controller goes away: the proxy keeps its config. A new controller (a fresh hub; on a port of
            // its own, as a restarted pod gets a new address behind the same Service name) that compiled the
            // same config gets a hello naming v4 and sends nothing.
            await serverGroup.triggerGracefulShutdown()
            #expect(await eventually { hub.proxies.first?.status == .disconnected } == true)
            #expect(store.current?.config.version == v4.version)
            let restarted = PushHub(logger: Self.logger)
            _ = await Self.compile(restarted, v4, generation: 4)
            let again = ConfigPushServer(host: "127.0.0.1", port: 0, hub: restarted, logger: Self.logger)
            let againGroup = ServiceGroup(configuration: .init(services: [again], logger: Self.logger))
            group.addTask { try await againGroup.run() }
            let newPort = try #require(await eventually { again.listeningPort })
            client.retarget(host: "127.0.0.1", port: newPort)
            #expect(await eventually { restarted.proxies.first?.status == .synced } == true)
            #expect(await Self.compile(restarted, v4, generation: 4)?.reason == "Programmed")
            #expect(client.statistics.acks == acksBefore)
            #expect(client.statistics.streams >= 2)
            #expect(store.current?.config.version == v4.version)

            // And the next change reaches the proxy over the new stream.
            // As a delta of the version the Hello named.
            let v5 = Self.config(port: 1005)
            let deltas = client.statistics.deltas
            _ = await Self.compile(restarted, v5, generation: 5)
            #expect(await eventually { store.current?.config.version == v5.version } == true)
            #expect(client.statistics.deltas == deltas + 1)
            #expect(store.current?.config == v5)
            group.cancelAll()
        }
    }

    @Test("a delta applies only to the version it was made from; otherwise the config serving stays")
    func deltaNeedsItsBase() throws {
        let store = ProxyStateStore()
        let installer = ConfigInstaller(store: store, logger: Self.logger)
        let v1 = Self.config(port: 1001)
        let v2 = Self.config(port: 1002)
        let delta = try #require(ProxyConfigDelta.between(v1, v2))
        func refusal(_ result: Result<ProxyState, any Error>) -> String? {
            guard case .failure(let error) = result else { return nil }
            return (error as? ProxyConfigError)?.code
        }
        // No config yet, or another version serving: refused, nothing changes.
        #expect(refusal(installer.install(delta, source: "test")) == "delta_base")
        #expect(store.current == nil)
        _ = installer.install(try v2.encodedCompact(), source: "test")
        #expect(refusal(installer.install(delta, source: "test")) == "delta_base")
        #expect(store.current?.config == v2)
        // On its base it makes the new config, and /config_dump shows that config.
        _ = installer.install(try v1.encodedCompact(), source: "test")
        let state = try installer.install(delta, source: "test").get()
        #expect(state.config == v2)
        #expect(try ProxyConfig.decode(Data(state.json.utf8)) == v2)
    }

    @Test("a config for another workload is refused, and a stream must start with a Hello")
    func wrongWorkload() async throws {
        let store = ProxyStateStore()
        let hub = PushHub(logger: Self.logger)
        let server = ConfigPushServer(host: "127.0.0.1", port: 0, hub: hub, logger: Self.logger)
        var other = Self.config(port: 1001)
        other.proxy.id = "shop/other"
        var result = CompileResult(proxies: [Self.proxyID: other])
        await hub.process(&result, snapshot: WeftSnapshot())
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }
            let port = try #require(await eventually { server.listeningPort })
            let client = PushClient(
                configuration: .init(host: "127.0.0.1", port: port, proxyID: Self.proxyID),
                installer: ConfigInstaller(store: store, logger: Self.logger), logger: Self.logger)
            group.addTask { try await client.run() }
            #expect(await eventually { hub.proxies.first?.status == .nacked } == true)
            #expect(hub.syncedCount == 0)
            #expect(hub.proxies.first?.error?.contains("shop/other") == true)
            #expect(store.current == nil)
            group.cancelAll()
        }
    }
}

/// Polls `value` every 10 ms for at most 60 s (a cap for a loaded machine, reached only when the test fails); the
/// first non-nil (or true) value.
func eventually<T>(_ value: @Sendable () async -> T?) async -> T? {
    let clock = ContinuousClock()
    let end = clock.now.advanced(by: .seconds(60))
    while clock.now < end {
        if let value = await value() { return value }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return await value()
}

func eventually(_ condition: @Sendable () async -> Bool) async -> Bool? {
    await eventually { await condition() ? true : nil }
}
