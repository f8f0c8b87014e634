import Foundation
import KubeClient
import KubeModel
import Logging
import Testing
import WeftAPI
import WeftCompiler
import WeftController
import WeftManifests
import WeftTesting

/// The controller against a fake API server with real semantics, over HTTP.
@Suite("Controller against an API server", .serialized)
struct KubernetesControllerTests {
    static let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("manifests/examples")

    /// Runs `body` with a fake API server holding the shop and a client for it, and shuts both down on every path.
    func withShop(_ body: (FakeAPIServer, KubeClient) async throws -> Void) async throws {
        let server = try await FakeAPIServer.start(bookmarkInterval: .milliseconds(200))
        try await server.withClient(logger: Logger(label: "test")) { server, client in
            try server.seed(ManifestLoader().load(path: Self.examples.path).snapshot)
            try await body(server, client)
        }
    }

    /// Reads, changes and writes back a VirtualService as `kubectl edit` does, again on a fresh copy when the write
    /// meets `409 Conflict` (client-go's `RetryOnConflict`): the controller's status writes move the resourceVersion,
    /// so a write that lands after one of them and after the read before it is stale. (One CI run failed on it.)
    @discardableResult
    static func edit(
        _ client: KubeClient, name: String, _ change: (inout weft.v1alpha1.VirtualService) throws -> Void
    ) async throws -> weft.v1alpha1.VirtualService {
        var attempt = 0
        while true {
            attempt += 1
            var vs = try await client.get(weft.v1alpha1.VirtualService.self, namespace: "shop", name: name)
            try change(&vs)
            do {
                return try await client.update(vs)
            } catch let error as KubeClientError where error.isConflict && attempt < 10 {
                continue
            }
        }
    }

    /// Leader election on `clock` with client-go's default timings (lease 15 s, renew deadline 10 s, retry 2 s):
    /// the test moves the clock, so nothing depends on how fast the machine is.
    static func options(
        leader identity: String? = nil, clock: any Clock<Duration> = ContinuousClock()
    ) -> KubernetesController.Options {
        KubernetesController.Options(
            leaderElection: identity.map { LeaderElector.Configuration(identity: $0) },
            informer: .init(
                watchTimeoutSeconds: 5...10, initialBackoff: .milliseconds(50),
                maximumBackoff: .milliseconds(500)),
            debounceQuiet: .milliseconds(20), debounceMax: .milliseconds(200), leaderElectionClock: clock)
    }

    /// Polls until `check` holds, for at most `seconds`.
    func eventually(seconds: Double = 60, _ check: () async throws -> Bool) async throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try await check() { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    func condition(_ server: FakeAPIServer, _ name: String, _ type: String) -> meta.v1.Condition? {
        server.get(weft.v1alpha1.VirtualService.self, namespace: "shop", name: name)?.status?.conditions?[type: type]
    }

    @Test("writes conditions with observedGeneration, and a second reconcile with nothing new writes nothing")
    func writesConditionsOnce() async throws {
        try await self.withShop { server, client in
            let state = ControllerState()
            let controller = KubernetesController(
                api: client, state: state, options: Self.options(),
                logger: Logger(label: "test"))
            try await withThrowingTaskGroup(of: Void.self) { group throws in
                group.addTask { try await controller.run() }
                defer { group.cancelAll() }
                #expect(
                    try await self.eventually {
                        self.condition(server, "catalog", "ResolvedRefs")?.status == .true
                            && self.condition(server, "payments", "Accepted")?.status == .true
                    })
                #expect(await controller.isReady)
                let vs = try #require(server.get(weft.v1alpha1.VirtualService.self, namespace: "shop", name: "catalog"))
                #expect(vs.status?.observedGeneration == vs.metadata.generation)
                #expect(vs.status?.conditions?[type: "Accepted"]?.observedGeneration == vs.metadata.generation)
                #expect(vs.status?.conditions?[type: "Accepted"]?.lastTransitionTime.isEmpty == false)
                let authz = server.get(weft.v1alpha1.AuthorizationPolicy.self, namespace: "shop", name: "deny-debug")
                #expect(authz?.status?.conditions?[type: "Accepted"]?.status == .true)

                // Every resource's first status is written (not only the two above: under load the mesh-wide
                // MeshTLSPolicy's first write once came after the reset and counted as a second one), the controller
                // has seen its own writes, then something changes that alters no condition.
                func allWritten() -> Bool {
                    server.list(weft.v1alpha1.VirtualService.self).allSatisfy {
                        $0.status?.conditions?.isEmpty == false
                    }
                        && server.list(weft.v1alpha1.DestinationPolicy.self).allSatisfy {
                            $0.status?.conditions?.isEmpty == false
                        }
                        && server.list(weft.v1alpha1.MeshTLSPolicy.self).allSatisfy {
                            $0.status?.conditions?.isEmpty == false
                        }
                        && server.list(weft.v1alpha1.AuthorizationPolicy.self).allSatisfy {
                            $0.status?.conditions?.isEmpty == false
                        }
                }
                // The controller's cache holds every resource as the server does (its own status writes seen):
                // otherwise the next compile finds the old status there and writes again. (A fixed 500 ms wait once
                // fell short on a loaded machine.)
                func cacheCaughtUp() -> Bool {
                    func caughtUp<R: WeftResource>(_ type: R.Type) -> Bool {
                        server.list(R.self).allSatisfy {
                            controller.source.current(ResourceRef($0))?.metadata.resourceVersion
                                == $0.metadata.resourceVersion
                        }
                    }
                    return caughtUp(weft.v1alpha1.VirtualService.self)
                        && caughtUp(weft.v1alpha1.DestinationPolicy.self)
                        && caughtUp(weft.v1alpha1.MeshTLSPolicy.self)
                        && caughtUp(weft.v1alpha1.AuthorizationPolicy.self)
                }
                #expect(try await self.eventually { allWritten() && cacheCaughtUp() })
                server.resetRequests()
                let compiles = state.compileCount
                var pod = try #require(
                    server.get(core.v1.Pod.self, namespace: "shop", name: "frontend-6d8f7b9c4-x2k7p"))
                pod.metadata.labels?["touched"] = "yes"
                _ = try await client.update(pod)
                #expect(try await self.eventually { state.compileCount > compiles })
                try await Task.sleep(for: .milliseconds(300))
                let writes = server.requests.filter { $0.isWrite && $0.path.hasSuffix("/status") }
                #expect(writes.isEmpty, "unexpected status writes: \(writes)")
            }
        }
    }

    @Test("a broken reference shows as ResolvedRefs=False with the name, and recovers when fixed")
    func brokenReference() async throws {
        try await self.withShop { server, client in
            let state = ControllerState()
            let controller = KubernetesController(
                api: client, state: state, options: Self.options(),
                logger: Logger(label: "test"))
            try await withThrowingTaskGroup(of: Void.self) { group throws in
                group.addTask { try await controller.run() }
                defer { group.cancelAll() }
                #expect(
                    try await self.eventually { self.condition(server, "catalog", "ResolvedRefs")?.status == .true })

                let updated = try await Self.edit(client, name: "catalog") { vs in
                    vs.spec.http?[1].route?[1].destination.subset = "v3"
                }
                #expect(
                    try await self.eventually {
                        self.condition(server, "catalog", "ResolvedRefs")?.reason == "SubsetNotFound"
                    })
                let broken = try #require(self.condition(server, "catalog", "ResolvedRefs"))
                #expect(broken.status == .false)
                #expect(broken.message.contains("subset \"v3\""))
                #expect(broken.observedGeneration == updated.metadata.generation)

                try await Self.edit(client, name: "catalog") { vs in
                    vs.spec.http?[1].route?[1].destination.subset = "v2"
                }
                #expect(
                    try await self.eventually { self.condition(server, "catalog", "ResolvedRefs")?.status == .true })
            }
        }
    }

    @Test("an invalid resource gets Accepted=False with the field path, and a Warning Event")
    func invalidResourceEvent() async throws {
        try await self.withShop { server, client in
            let controller = KubernetesController(
                api: client, state: ControllerState(), options: Self.options(),
                logger: Logger(label: "test"))
            try await withThrowingTaskGroup(of: Void.self) { group throws in
                group.addTask { try await controller.run() }
                defer { group.cancelAll() }
                #expect(try await self.eventually { self.condition(server, "catalog", "Accepted")?.status == .true })
                try await Self.edit(client, name: "catalog") { vs in
                    vs.spec.http?[1].route?[0].weight = 80
                }
                #expect(
                    try await self.eventually { self.condition(server, "catalog", "Accepted")?.reason == "Invalid" })
                #expect(
                    self.condition(server, "catalog", "Accepted")?.message
                        .contains("spec.http[1].route: weights must sum to 100, got 90") == true)
                #expect(
                    try await self.eventually {
                        server.list(core.v1.Event.self, namespace: "shop").contains { event in
                            event.fields.involvedObject.name == "catalog" && event.fields.reason == "Invalid"
                                && event.fields.type == "Warning"
                        }
                    })
            }
        }
    }

    @Test("2,000 errors: the Accepted message is cut to the API's 32,768 characters and the write succeeds")
    func manyErrorsFitTheMessageLimit() async throws {
        try await self.withShop { server, client in
            let controller = KubernetesController(
                api: client, state: ControllerState(), options: Self.options(), logger: Logger(label: "test"))
            try await withThrowingTaskGroup(of: Void.self) { group throws in
                group.addTask { try await controller.run() }
                defer { group.cancelAll() }
                #expect(try await self.eventually { self.condition(server, "catalog", "Accepted")?.status == .true })
                try await Self.edit(client, name: "catalog") { vs in
                    var route = weft.v1alpha1.HTTPRoute()
                    route.route = [weft.v1alpha1.HTTPRouteDestination(destination: .init(host: "catalog"))]
                    route.timeout = "7x"
                    vs.spec.http = Array(repeating: route, count: 2000)
                }
                #expect(
                    try await self.eventually { self.condition(server, "catalog", "Accepted")?.reason == "Invalid" })
                let message = try #require(self.condition(server, "catalog", "Accepted")?.message)
                #expect(message.unicodeScalars.count <= 32_768)
                #expect(message.hasPrefix("spec.http[0].timeout: "))
                #expect(try #/; … and \d+ more$/#.firstMatch(in: message) != nil, "\(message.suffix(200))")
            }
        }
    }

    @Test("a status the API server refuses (422) is not sent again until it changes")
    func refusedWriteIsNotRetried() async throws {
        try await self.withShop { server, client in
            let state = ControllerState()
            let controller = KubernetesController(
                api: client, state: state, options: Self.options(), logger: Logger(label: "test"))
            try await withThrowingTaskGroup(of: Void.self) { group throws in
                group.addTask { try await controller.run() }
                defer { group.cancelAll() }
                #expect(
                    try await self.eventually { self.condition(server, "catalog", "ResolvedRefs")?.status == .true })
                // Only the write of the conditions naming "nowhere" is refused (a late start-up write is not).
                server.failNext(
                    1, status: 422, method: "PATCH", pathContains: "virtualservices/catalog/status",
                    bodyContains: "nowhere"
                )
                try await Self.edit(client, name: "catalog") { vs in
                    vs.spec.http?[0].route?[0].destination.host = "nowhere"
                }
                #expect(try await self.eventually { Self.patches(server, containing: "nowhere") >= 1 })
                // The retry queue would have sent it again within a second (its backoff starts at 5 ms); another
                // compile (a Pod label changes) must not resend the refused conditions either.
                var pod = try #require(
                    server.get(core.v1.Pod.self, namespace: "shop", name: "frontend-6d8f7b9c4-x2k7p"))
                pod.metadata.labels?["touched"] = "yes"
                let compiles = state.compileCount
                _ = try await client.update(pod)
                #expect(try await self.eventually { state.compileCount > compiles })
                try await Task.sleep(for: .seconds(1))
                #expect(
                    Self.patches(server, containing: "nowhere") == 1,
                    "\(server.requests.filter { $0.path.contains("catalog/status") })")
                #expect(self.condition(server, "catalog", "ResolvedRefs")?.status == .true)
                // A change of the conditions is written.
                try await Self.edit(client, name: "catalog") { vs in
                    vs.spec.http?[0].route?[0].destination.host = "elsewhere"
                }
                #expect(
                    try await self.eventually {
                        self.condition(server, "catalog", "ResolvedRefs")?.message.contains("elsewhere") == true
                    })
            }
        }
    }

    /// Status PATCHes of the catalog VirtualService whose body holds `text`.
    static func patches(_ server: FakeAPIServer, containing text: String) -> Int {
        server.requests.count {
            $0.method == "PATCH" && $0.path.contains("virtualservices/catalog/status") && $0.body.contains(text)
        }
    }

    @Test("Events: names stay within 253 characters; a repeated Event is counted on the existing object")
    func eventsAreNamedAndAggregatedLikeClientGo() async throws {
        try await self.withShop { server, client in
            let controller = KubernetesController(
                api: client, state: ControllerState(), options: Self.options(), logger: Logger(label: "test"))
            // The longest name a VirtualService may have.
            let name =
                String(repeating: "a", count: 63) + "." + String(repeating: "b", count: 63) + "."
                + String(repeating: "c", count: 63) + "." + String(repeating: "d", count: 61)
            try await withThrowingTaskGroup(of: Void.self) { group throws in
                group.addTask { try await controller.run() }
                defer { group.cancelAll() }
                #expect(try await self.eventually { self.condition(server, "catalog", "Accepted")?.status == .true })
                var long = weft.v1alpha1.VirtualService()
                long.metadata.namespace = "shop"
                long.metadata.name = name
                // frontend: no other VirtualService routes it (two for one host would conflict once this one is valid).
                long.spec.hosts = ["frontend"]
                var route = weft.v1alpha1.HTTPRoute()
                route.route = [weft.v1alpha1.HTTPRouteDestination(destination: .init(host: "frontend"))]
                route.timeout = "7x"
                long.spec.http = [route]
                _ = try await client.create(long)
                func events() -> [core.v1.Event] {
                    server.list(core.v1.Event.self, namespace: "shop").filter { $0.fields.involvedObject.name == name }
                }
                #expect(try await self.eventually { events().count == 1 })
                let first = try #require(events().first)
                #expect(first.metadata.name?.count ?? 0 <= 253)
                #expect(first.metadata.name?.hasPrefix(String(name.prefix(200))) == true)
                #expect(first.fields.count == 1)

                // Valid, then invalid again with the same message: the same Event, counted twice.
                for timeout in ["2s", "7x"] {
                    try await Self.edit(client, name: name) { vs in
                        vs.spec.http?[0].timeout = timeout
                    }
                    let reason = timeout == "2s" ? "Accepted" : "Invalid"
                    #expect(
                        try await self.eventually {
                            server.get(weft.v1alpha1.VirtualService.self, namespace: "shop", name: name)?.status?
                                .conditions?[type: "Accepted"]?.reason == reason
                        })
                }
                #expect(try await self.eventually { events().first?.fields.count == 2 })
                #expect(events().count == 1)
                #expect(events().first?.metadata.name == first.metadata.name)
            }
        }
    }

    @Test("a failed status write is retried with backoff, without any other change")
    func retriesFailedWrites() async throws {
        try await self.withShop { server, client in
            let state = ControllerState()
            let controller = KubernetesController(
                api: client, state: state, options: Self.options(),
                logger: Logger(label: "test"))
            try await withThrowingTaskGroup(of: Void.self) { group throws in
                group.addTask { try await controller.run() }
                defer { group.cancelAll() }
                #expect(
                    try await self.eventually { self.condition(server, "catalog", "ResolvedRefs")?.status == .true })
                // Let the start-up compiles settle, then make the next status write fail once.
                var compiles = state.compileCount
                while true {
                    try await Task.sleep(for: .milliseconds(400))
                    if state.compileCount == compiles { break }
                    compiles = state.compileCount
                }
                server.failNext(1, status: 500, method: "PATCH", pathContains: "/status")
                try await Self.edit(client, name: "catalog") { vs in
                    vs.spec.http?[0].route?[0].destination.host = "nowhere"
                }
                // Nothing else changes: only the retry queue brings the write back.
                #expect(
                    try await self.eventually {
                        self.condition(server, "catalog", "ResolvedRefs")?.reason == "BackendNotFound"
                    })
                #expect(server.count(method: "PATCH", pathContains: "virtualservices/catalog/status") >= 2)
            }
        }
    }

    @Test("cut watches and expired versions lose no update")
    func survivesCutWatches() async throws {
        try await self.withShop { server, client in
            let controller = KubernetesController(
                api: client, state: ControllerState(), options: Self.options(),
                logger: Logger(label: "test"))
            try await withThrowingTaskGroup(of: Void.self) { group throws in
                group.addTask { try await controller.run() }
                defer { group.cancelAll() }
                #expect(
                    try await self.eventually { self.condition(server, "catalog", "ResolvedRefs")?.status == .true })

                // Cut every watch, then change a reference while the informers reconnect.
                server.cutWatches()
                try await Self.edit(client, name: "catalog") { vs in
                    vs.spec.http?[0].route?[0].destination.host = "nowhere"
                }
                #expect(
                    try await self.eventually {
                        self.condition(server, "catalog", "ResolvedRefs")?.reason == "BackendNotFound"
                    })

                // Expire every resourceVersion, cut again, and fix it: the informers re-list and see the fix.
                server.expireHistory()
                server.cutWatches()
                try await Self.edit(client, name: "catalog") { vs in
                    vs.spec.http?[0].route?[0].destination.host = "catalog"
                }
                #expect(
                    try await self.eventually { self.condition(server, "catalog", "ResolvedRefs")?.status == .true })
            }
        }
    }

    @Test("the leader publishes the trust bundle as weft-ca-root in every namespace but Kubernetes' own")
    func trustBundlePublished() async throws {
        try await self.withShop { server, client in
            var system = core.v1.Namespace()
            system.metadata.name = "kube-system"
            try server.seed(system)
            var options = Self.options()
            options.trustBundle = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
            let controller = KubernetesController(
                api: client, state: ControllerState(), options: options, logger: Logger(label: "test"))
            try await withThrowingTaskGroup(of: Void.self) { group throws in
                defer { group.cancelAll() }
                group.addTask { try await controller.run() }
                #expect(
                    try await self.eventually {
                        server.get(core.v1.ConfigMap.self, namespace: "shop", name: "weft-ca-root")?.data?["ca.crt"]
                            == options.trustBundle
                    })
                // A namespace created later gets it too; kube-system never.
                var late = core.v1.Namespace()
                late.metadata.name = "late"
                _ = try await client.create(late)
                #expect(
                    try await self.eventually {
                        server.get(core.v1.ConfigMap.self, namespace: "late", name: "weft-ca-root") != nil
                    })
                #expect(server.get(core.v1.ConfigMap.self, namespace: "kube-system", name: "weft-ca-root") == nil)
            }
        }
    }

    @Test("two controllers: one leader writes; the other takes over at its next retry when the leader stops")
    func leaderTakeover() async throws {
        try await self.withShop { server, client in
            let clock = TestClock()
            let first = KubernetesController(
                api: client, state: ControllerState(), options: Self.options(leader: "first", clock: clock),
                logger: Logger(label: "first"))
            let second = KubernetesController(
                api: client, state: ControllerState(), options: Self.options(leader: "second", clock: clock),
                logger: Logger(label: "second"))
            let firstElector = try #require(first.elector)
            let secondElector = try #require(second.elector)
            try await withThrowingTaskGroup(of: Void.self) { group throws in
                defer { group.cancelAll() }
                try await withThrowingTaskGroup(of: Void.self) { firstGroup throws in
                    // The first one leads (nothing sleeps before the first attempt), then the second one starts.
                    firstGroup.addTask { try await first.run() }
                    #expect(try await self.eventually { first.isLeader && clock.sleeperCount == 1 })
                    group.addTask { try await second.run() }
                    #expect(
                        try await self.eventually { secondElector.observedHolder == "first" && clock.sleeperCount == 2 }
                    )
                    #expect(
                        try await self.eventually { self.condition(server, "catalog", "Accepted")?.status == .true })
                    #expect(!second.isLeader)
                    let lease = server.get(
                        coordination.v1.Lease.self, namespace: "weft-system", name: "weft-controller")
                    #expect(lease?.spec?.holderIdentity == "first")
                    #expect(lease?.spec?.leaseDurationSeconds == 15)
                    // Stop the leader by cancellation: it still releases its Lease.
                    firstGroup.cancelAll()
                }
                #expect(!firstElector.isLeader)
                let released = server.get(coordination.v1.Lease.self, namespace: "weft-system", name: "weft-controller")
                #expect(released?.spec?.holderIdentity ?? "" == "")
                // The follower's next attempt (2 s and at most 20 % jitter later, far less than the 15 s lease) takes it.
                clock.advance(by: .milliseconds(2400))
                #expect(try await self.eventually { second.isLeader })
                let newHolder = server.get(
                    coordination.v1.Lease.self, namespace: "weft-system", name: "weft-controller")?
                    .spec?.holderIdentity
                #expect(newHolder == "second")

                // The new leader writes the next change.
                try await Self.edit(client, name: "payments") { vs in
                    vs.spec.http?[0].timeout = "7x"
                }
                #expect(
                    try await self.eventually { self.condition(server, "payments", "Accepted")?.reason == "Invalid" })
            }
        }
    }
}
