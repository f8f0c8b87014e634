import Foundation
import Logging
import ProxyConfig
import ServiceLifecycle
import Testing
import WeftCompiler
import WeftController
import WeftProxy

extension Controller {
    /// Three proxies: `client` reaches `catalog` and `reviews` over mTLS, each to that proxy's STRICT inbound, which
    /// forwards to its app. `reviewsTo` names the cluster the client's `reviews` route sends to (`catalog` moves
    /// that traffic to the catalog proxy).
    func compileThree(catalog: Int, reviews: Int, apps: [Int], reviewsTo: String = "reviews") async {
        func identity(_ name: String) -> ProxyIdentity {
            ProxyIdentity(
                id: "shop/\(name)", namespace: "shop", name: name, serviceAccount: name,
                spiffeID: "spiffe://cluster.local/ns/shop/sa/\(name)", trustDomain: "cluster.local",
                addresses: ["127.0.0.1"])
        }
        func cluster(_ name: String, port: Int) -> Cluster {
            var cluster = TestConfig.cluster(name, ports: [])
            cluster.endpoints = [
                Endpoint(address: "127.0.0.1", port: port, identity: "spiffe://cluster.local/ns/shop/sa/\(name)")
            ]
            return cluster
        }
        let client = ProxyConfig(
            proxy: identity("client"),
            outbound: [
                TestConfig.service("catalog", routes: [TestConfig.forward(to: "catalog")]),
                TestConfig.service("reviews", routes: [TestConfig.forward(to: reviewsTo)]),
            ],
            clusters: [cluster("catalog", port: catalog), cluster("reviews", port: reviews)])
        func server(_ name: String, app: Int) -> ProxyConfig {
            ProxyConfig(
                proxy: identity(name), inbound: [InboundPort(port: 8080, protocol: .http1, tls: .strict, appPort: app)])
        }
        var result = CompileResult(
            proxies: [
                "shop/client": (try? client.versioned()) ?? client,
                "shop/catalog": (try? server("catalog", app: apps[0]).versioned()) ?? server("catalog", app: apps[0]),
                "shop/reviews": (try? server("reviews", app: apps[1]).versioned()) ?? server("reviews", app: apps[1]),
            ])
        await self.hub.process(&result, snapshot: WeftSnapshot())
    }
}

/// The controller goes away in the middle of the mesh's life and comes back: the proxies keep serving mTLS traffic
/// without it, reconnect to the new one without any config going backwards, and take its next change.
@Suite("Controller outage: three proxies on mTLS", .serialized)
struct ControllerOutageTests {
    @Test func proxiesServeWhileTheControllerIsDownAndResumeWithoutGoingBack() async throws {
        let first = try await Controller.make()
        try await withUpstreams(["catalog-app", "reviews-app"]) { upstreams in
            let sources = (0..<3).map { _ in InMemoryCertificateSource() }
            try await ProxyHarness.withProxy(config: nil, meshTLS: MeshTLS(source: sources[0])) { catalog in
                try await ProxyHarness.withProxy(config: nil, meshTLS: MeshTLS(source: sources[1])) { reviews in
                    try await ProxyHarness.withProxy(config: nil, meshTLS: MeshTLS(source: sources[2])) { client in
                        let apps = upstreams.map(\.port)
                        await first.compileThree(catalog: catalog.inboundPort, reviews: reviews.inboundPort, apps: apps)
                        try await Self.scenario(
                            first: first, proxies: [("catalog", catalog), ("reviews", reviews), ("client", client)],
                            sources: sources, apps: apps, upstreams: upstreams)
                    }
                }
            }
        }
    }

    static func scenario(
        first: Controller, proxies: [(String, ProxyHarness)], sources: [InMemoryCertificateSource], apps: [Int],
        upstreams: [TestUpstream]
    ) async throws {
        let client = proxies[2].1
        let stores = proxies.map(\.1.store)
        @Sendable func traffic(_ count: Int) async throws -> [String: Int] {
            var servers: [String: Int] = [:]
            for index in 0..<count {
                let response = try await client.get("/", host: index % 2 == 0 ? "catalog" : "reviews")
                servers["\(response.status) \(response.server ?? "-")", default: 0] += 1
            }
            return servers
        }
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            // Controller A, and the proxies' identity and push clients against it.
            var pushes: [PushClient] = []
            try await withThrowingTaskGroup(of: Void.self) { controllerA in
                controllerA.addTask { try await first.server.run() }
                let port = try #require(await waitFor { first.server.listeningPort })
                var services: [any Service] = []
                for (index, (name, harness)) in proxies.enumerated() {
                    let (identity, push) = try clients(
                        name, port: port, controller: first, certificates: sources[index], store: harness.store)
                    services += [identity, push]
                    pushes.append(push)
                }
                let group = ServiceGroup(configuration: .init(services: services, logger: logger))
                tasks.addTask { try await group.run() }
                #expect(await waitUntil { first.hub.syncedCount == 3 })
                #expect(try await traffic(10) == ["200 catalog-app": 5, "200 reviews-app": 5])

                // Killed: the server task is cancelled, its connections drop.
                controllerA.cancelAll()
            }
            // Its streams are gone.
            #expect(await waitUntil { first.hub.syncedCount == 0 })
            let running = stores.map { $0.current?.config.version }
            #expect(running.allSatisfy { $0 != nil })
            let acks = pushes.map(\.statistics.acks)

            // Nobody to talk to: the proxies keep serving, over mTLS (the inbounds are STRICT).
            #expect(try await traffic(20) == ["200 catalog-app": 10, "200 reviews-app": 10])
            #expect(stores.map { $0.current?.config.version } == running)

            // Controller B: the same CA (the Secret outlives the pod), a fresh hub that compiled the same cluster,
            // on a new address. The proxies reconnect, name what they run, and get nothing: no config goes back.
            let second = try await Controller.make(ca: first.ca)
            await second.compileThree(catalog: proxies[0].1.inboundPort, reviews: proxies[1].1.inboundPort, apps: apps)
            let serverB = ServiceGroup(configuration: .init(services: [second.server], logger: logger))
            tasks.addTask { try await serverB.run() }
            let portB = try #require(await waitFor { second.server.listeningPort })
            for push in pushes { push.retarget(host: "127.0.0.1", port: portB) }
            #expect(await waitUntil { second.hub.syncedCount == 3 })
            #expect(pushes.map(\.statistics.acks) == acks)
            #expect(stores.map { $0.current?.config.version } == running)
            #expect(second.hub.proxies.map(\.acknowledged) == second.hub.proxies.map(\.desired))

            // B's next change reaches the client (as a delta) and moves the reviews traffic.
            await second.compileThree(
                catalog: proxies[0].1.inboundPort, reviews: proxies[1].1.inboundPort, apps: apps, reviewsTo: "catalog")
            #expect(
                await waitUntil { second.hub.syncedCount == 3 && client.store.current?.config.version != running[2] })
            #expect(pushes[2].statistics.deltas >= 1)
            #expect(try await traffic(10) == ["200 catalog-app": 10])
            #expect(upstreams[0].requestsReceived == 5 + 10 + 10)
            tasks.cancelAll()
        }
    }
}
