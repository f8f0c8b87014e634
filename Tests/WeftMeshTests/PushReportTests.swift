import Foundation
import KubeClient
import KubeModel
import Logging
import ServiceLifecycle
import Testing
import WeftAPI
import WeftController
import WeftManifests
import WeftProxy
import WeftTesting

/// Two controller replicas against a fake API server: each proxy streams from one of them, and the leader's
/// `Programmed` counts them all, through the replicas' push reports.
@Suite("Push reports: Programmed across controller replicas", .serialized)
struct PushReportTests {
    static let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("manifests/examples")
    static let logger = Logger(label: "weft.test.report")

    /// Runs `body` with a fake API server holding the shop and a client for it, and shuts both down on every path.
    static func withShop(_ body: (FakeAPIServer, KubeClient) async throws -> Void) async throws {
        let server = try await FakeAPIServer.start(bookmarkInterval: .milliseconds(200))
        try await server.withClient(logger: Self.logger) { server, client in
            try server.seed(ManifestLoader().load(path: Self.examples.path).snapshot)
            try await body(server, client)
        }
    }

    /// One replica: the controller (leader election on `clock`), its push hub and server, and its reporter.
    struct Replica {
        let controller: KubernetesController
        let hub: PushHub
        let push: ConfigPushServer
        let reporter: PushReporter
        let group: ServiceGroup

        init(_ name: String, client: KubeClient, clock: TestClock) {
            let hub = PushHub(logger: PushReportTests.logger)
            let controller = KubernetesController(
                api: client, state: ControllerState(),
                options: KubernetesController.Options(
                    leaderElection: LeaderElector.Configuration(identity: name),
                    informer: .init(
                        watchTimeoutSeconds: 5...10, initialBackoff: .milliseconds(50),
                        maximumBackoff: .milliseconds(500)),
                    debounceQuiet: .milliseconds(20), debounceMax: .milliseconds(200), leaderElectionClock: clock),
                stages: [hub], logger: Logger(label: name))
            hub.onAnswer { controller.signal() }
            let push = ConfigPushServer(host: "127.0.0.1", port: 0, hub: hub, logger: PushReportTests.logger)
            let reporter = PushReporter(
                api: client, hub: hub,
                configuration: .init(
                    namespace: "weft-system", replica: name, name: PushReport.configMapName(host: name),
                    interval: .milliseconds(50)),
                logger: Logger(label: "\(name).report"))
            self.controller = controller
            self.hub = hub
            self.push = push
            self.reporter = reporter
            self.group = ServiceGroup(
                configuration: .init(services: [controller, push, reporter], logger: PushReportTests.logger))
        }
    }

    static func programmed(_ server: FakeAPIServer) -> [String: String] {
        var reasons: [String: String] = [:]
        for name in ["catalog", "payments"] {
            let vs = server.get(weft.v1alpha1.VirtualService.self, namespace: "shop", name: name)
            reasons[name] = vs?.status?.conditions?[type: "Programmed"]?.reason ?? "-"
        }
        return reasons
    }

    @Test("proxies split between two replicas: the leader's Programmed counts all; a stopped replica's report goes")
    func programmedCountsEveryReplica() async throws {
        try await Self.withShop { server, client in
            let clock = TestClock()
            let first = Replica("first", client: client, clock: clock)
            let second = Replica("second", client: client, clock: clock)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await first.group.run() }
                #expect(await eventually { first.controller.isLeader && clock.sleeperCount >= 1 } == true)
                try await withThrowingTaskGroup(of: Void.self) { followerGroup in
                    followerGroup.addTask { try await second.group.run() }
                    #expect(await eventually { !first.hub.proxies.isEmpty && !second.hub.proxies.isEmpty } == true)
                    #expect(!second.controller.isLeader)
                    let ids = first.hub.proxies.map(\.id)
                    #expect(ids.count >= 2)
                    let firstPort = try #require(await eventually { first.push.listeningPort })
                    let secondPort = try #require(await eventually { second.push.listeningPort })
                    // Every other proxy streams from the follower.
                    var clients: [any Service] = []
                    for (index, id) in ids.enumerated() {
                        clients.append(
                            PushClient(
                                configuration: .init(
                                    host: "127.0.0.1", port: index % 2 == 0 ? firstPort : secondPort, proxyID: id,
                                    initialBackoff: .milliseconds(20), maximumBackoff: .milliseconds(200)),
                                installer: ConfigInstaller(store: ProxyStateStore(), logger: Self.logger),
                                logger: Self.logger, jitter: { 0.5 }))
                    }
                    let proxies = ServiceGroup(configuration: .init(services: clients, logger: Self.logger))
                    group.addTask { try await proxies.run() }

                    // The leader counts the follower's proxies too: every resource is programmed on every proxy.
                    #expect(
                        await eventually {
                            Self.programmed(server) == ["catalog": "Programmed", "payments": "Programmed"]
                        } == true, "\(Self.programmed(server))")
                    #expect(first.hub.syncedCount == ids.count)
                    let viaFollower = first.hub.proxies.filter { $0.replica == "second" }
                    #expect(viaFollower.count == ids.count / 2)
                    #expect(viaFollower.allSatisfy { $0.status == .synced })
                    #expect(
                        server.get(core.v1.ConfigMap.self, namespace: "weft-system", name: "weft-push-report-second")
                            != nil
                    )

                    // The follower stops: its report is deleted, and the leader no longer counts its proxies.
                    await second.group.triggerGracefulShutdown()
                }
                #expect(
                    server.get(core.v1.ConfigMap.self, namespace: "weft-system", name: "weft-push-report-second") == nil
                )
                #expect(await eventually { first.hub.proxies.allSatisfy { $0.replica == nil } } == true)
                group.cancelAll()
            }
        }
    }

    @Test("a report that stopped changing for the expiry (its replica killed) stops counting, on an injected clock")
    func staleReportsExpire() async throws {
        try await Self.withShop { server, client in
            let hub = PushHub(logger: Self.logger)
            let config = PushStreamTests.config(port: 1001)
            #expect(await PushStreamTests.compile(hub, config, generation: 1)?.reason == "Pending")
            // A report of a replica that then died, listing the proxy as running the desired version.
            let ghost = PushReport(
                replica: "ghost", proxies: [PushStreamTests.proxyID: .init(acknowledged: config.version)])
            try server.seed(
                try ghost.configMap(name: "weft-push-report-ghost", namespace: "weft-system", renewed: Date()))
            let clock = TestClock()
            let reporter = PushReporter(
                api: client, hub: hub,
                configuration: .init(
                    namespace: "weft-system", replica: "here", name: "weft-push-report-here", interval: .seconds(1),
                    renewal: .seconds(30), expiry: .seconds(90)),
                clock: clock, logger: Self.logger)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await reporter.run() }
                #expect(await eventually { hub.proxies.first?.replica == "ghost" } == true)
                #expect(hub.proxies.first?.status == .synced)
                #expect(await PushStreamTests.compile(hub, config, generation: 1)?.reason == "Programmed")
                // Its own report is written too.
                #expect(
                    await eventually {
                        server.get(core.v1.ConfigMap.self, namespace: "weft-system", name: "weft-push-report-here")
                            != nil
                    } == true)
                // 89 s without a change: still counted; past 90 s: gone.
                #expect(await eventually { clock.sleeperCount == 1 } == true)
                clock.advance(by: .seconds(89))
                #expect(await eventually { clock.sleeperCount == 1 } == true)
                #expect(hub.proxies.first?.replica == "ghost")
                clock.advance(by: .seconds(2))
                #expect(await eventually { hub.proxies.first?.status == .disconnected } == true)
                #expect(hub.proxies.first?.replica == nil)
                group.cancelAll()
            }
        }
    }

    @Test("a report ConfigMap is what server-side apply takes: identity, labels and data, no nulls; it reads back")
    func reportRoundTrip() throws {
        let report = PushReport(
            replica: "weft-controller-7d9f_1",
            proxies: [
                "shop/a": .init(acknowledged: "v1"),
                "shop/b": .init(acknowledged: "v1", refused: .init(version: "v2", error: "invalid_header: x")),
            ])
        let name = PushReport.configMapName(host: "Weft-Controller-7d9f_1")
        #expect(name == "weft-push-report-weft-controller-7d9f-1")
        let configMap = try report.configMap(
            name: name, namespace: "weft-system", renewed: Date(timeIntervalSince1970: 0))
        guard case .object(let body) = try JSONValue.from(encodable: configMap) else {
            Issue.record("not an object")
            return
        }
        #expect(Set(body.keys) == ["apiVersion", "kind", "metadata", "data"])
        guard case .object(let metadata)? = body["metadata"] else {
            Issue.record("no metadata")
            return
        }
        #expect(Set(metadata.keys) == ["name", "namespace", "labels"])
        #expect(configMap.data?["renewed"] == "1970-01-01T00:00:00Z")
        #expect(PushReport(configMap: configMap) == report)
        var unlabelled = configMap
        unlabelled.metadata.labels = [:]
        #expect(PushReport(configMap: unlabelled) == nil)
    }
}
