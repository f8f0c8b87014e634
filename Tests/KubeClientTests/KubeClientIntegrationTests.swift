import Foundation
import KubeModel
import Logging
import Metrics
import Synchronization
import Testing
import WeftAPI
import WeftTesting

@testable import KubeClient

/// `KubeClient` against `FakeAPIServer` over real HTTP: the wire format is exercised, never mocked.
@Suite("KubeClient against FakeAPIServer")
struct KubeClientIntegrationTests {
    typealias VirtualService = weft.v1alpha1.VirtualService

    // MARK: - Writes and reads

    @Test("create, get, list, update, updateStatus, patch (merge, json, apply) and delete a VirtualService")
    func virtualServiceLifecycle() async throws {
        try await withFixture { server, client in
            let created = try await client.create(Self.virtualService("web", hosts: ["web"]))
            #expect(created.metadata.uid != nil)
            #expect(created.metadata.generation == 1)
            #expect(server.requests.last?.contentType == "application/json")

            let fetched = try await client.get(VirtualService.self, namespace: "shop", name: "web")
            #expect(fetched.spec.hosts == ["web"])
            let list = try await client.list(VirtualService.self, namespace: "shop", options: ListOptions())
            #expect(list.items.map(\.metadata.name) == ["web"])
            #expect(list.metadata.resourceVersion != nil)

            var changed = fetched
            changed.spec.hosts = ["web", "web.shop"]
            let updated = try await client.update(changed)
            #expect(updated.spec.hosts == ["web", "web.shop"])
            #expect(updated.metadata.generation == 2)

            var withStatus = updated
            withStatus.status = WeftStatus(observedGeneration: 2)
            let statusWritten = try await client.updateStatus(withStatus)
            #expect(statusWritten.status?.observedGeneration == 2)
            #expect(statusWritten.metadata.generation == 2)
            #expect(server.requests.last?.path.hasSuffix("/virtualservices/web/status") == true)

            let merged = try await client.patch(
                VirtualService.self, namespace: "shop", name: "web",
                patch: .merge(["metadata": ["labels": ["team": "shop"]]]), options: PatchOptions())
            #expect(merged.metadata.labels == ["team": "shop"])
            #expect(server.requests.last?.contentType == "application/merge-patch+json")

            let jsonPatched = try await client.patch(
                VirtualService.self, namespace: "shop", name: "web",
                patch: .json([JSONPatchOperation(op: "replace", path: "/spec/hosts", value: ["api"])]),
                options: PatchOptions())
            #expect(jsonPatched.spec.hosts == ["api"])
            #expect(server.requests.last?.contentType == "application/json-patch+json")

            let applied = try await client.patch(
                VirtualService.self, namespace: "shop", name: "web",
                patch: .apply(["metadata": ["name": "web", "namespace": "shop"], "spec": ["hosts": ["web"]]]),
                options: PatchOptions(fieldManager: "weft-controller", force: true))
            #expect(applied.spec.hosts == ["web"])
            let applyRequest = try #require(server.requests.last)
            #expect(applyRequest.contentType == "application/apply-patch+yaml")
            #expect(applyRequest.query["fieldManager"] == "weft-controller")
            #expect(applyRequest.query["force"] == "true")

            try await client.delete(VirtualService.self, namespace: "shop", name: "web")
            let gone = await #expect(throws: KubeClientError.self) {
                _ = try await client.get(VirtualService.self, namespace: "shop", name: "web")
            }
            #expect(gone?.isNotFound == true)
            #expect(gone?.request == "GET /apis/weft.dev/v1alpha1/namespaces/shop/virtualservices/web")
        }
    }

    @Test("create, get, update, updateStatus, patch and delete a core Pod; the default namespace applies")
    func podLifecycle() async throws {
        try await withFixture { server, client in
            var pod = core.v1.Pod.new(name: "web-1")
            var container = core.v1.Container()
            container.name = "app"
            container.image = "nginx:1.27"
            var spec = core.v1.PodSpec()
            spec.containers = [container]
            pod.spec = spec
            let created = try await client.create(pod)
            #expect(created.metadata.namespace == "shop")
            #expect(server.requests.last?.path == "/api/v1/namespaces/shop/pods")

            var fetched = try await client.get(core.v1.Pod.self, namespace: nil, name: "web-1")
            #expect(fetched.spec?.containers.first?.image == "nginx:1.27")
            fetched.metadata.labels = ["app": "web"]
            let updated = try await client.update(fetched)
            #expect(updated.metadata.labels == ["app": "web"])

            var running = updated
            var status = core.v1.PodStatus()
            status.phase = "Running"
            running.status = status
            let statusWritten = try await client.updateStatus(running)
            #expect(statusWritten.status?.phase == "Running")

            let patched = try await client.patch(
                core.v1.Pod.self, namespace: "shop", name: "web-1",
                patch: .merge(["metadata": ["annotations": ["weft.dev/inject": "true"]]]), options: PatchOptions())
            #expect(patched.metadata.annotations?["weft.dev/inject"] == "true")

            try await client.delete(core.v1.Pod.self, namespace: "shop", name: "web-1")
            #expect(server.count(method: "DELETE", pathContains: "/pods/web-1") == 1)
            let list = try await client.list(core.v1.Pod.self, namespace: nil, options: ListOptions())
            #expect(list.items.isEmpty)
        }
    }

    // MARK: - Errors

    @Test("a stale update is a conflict; a missing object is not found")
    func conflictAndNotFound() async throws {
        try await withFixture { _, client in
            let created = try await client.create(Self.virtualService("web", hosts: ["web"]))
            var first = created
            first.spec.hosts = ["one"]
            _ = try await client.update(first)

            var stale = created
            stale.spec.hosts = ["two"]
            let conflict = await #expect(throws: KubeClientError.self) { _ = try await client.update(stale) }
            #expect(conflict?.isConflict == true)
            #expect(conflict?.code == .api)
            #expect(conflict?.reason == "Conflict")
            #expect(conflict?.request == "PUT /apis/weft.dev/v1alpha1/namespaces/shop/virtualservices/web")

            let missing = await #expect(throws: KubeClientError.self) {
                _ = try await client.patch(
                    VirtualService.self, namespace: "shop", name: "nope", patch: .merge([:]), options: PatchOptions())
            }
            #expect(missing?.isNotFound == true)
            #expect(missing?.status?.message?.contains("nope") == true)
        }
    }

    @Test("an injected 500 surfaces with the request named; apply without a field manager is never sent")
    func injectedFailure() async throws {
        try await withFixture { server, client in
            _ = try await client.create(Self.virtualService("web", hosts: ["web"]))
            server.failNext(1, status: 500, method: "PATCH")
            let error = await #expect(throws: KubeClientError.self) {
                _ = try await client.patch(
                    VirtualService.self, namespace: "shop", name: "web", patch: .merge(["spec": ["hosts": ["a"]]]),
                    options: PatchOptions())
            }
            #expect(error?.code == .api)
            #expect(error?.httpStatus == 500)
            #expect(error?.request == "PATCH /apis/weft.dev/v1alpha1/namespaces/shop/virtualservices/web")
            #expect(
                error?.description.contains("PATCH /apis/weft.dev/v1alpha1/namespaces/shop/virtualservices/web") == true
            )

            let patches = server.count(method: "PATCH")
            let unsent = await #expect(throws: KubeClientError.self) {
                _ = try await client.patch(
                    VirtualService.self, namespace: "shop", name: "web", patch: .apply(["spec": [:]]),
                    options: PatchOptions())
            }
            #expect(unsent?.code == .configuration)
            #expect(server.count(method: "PATCH") == patches)
        }
    }

    // MARK: - Lists

    @Test("a list pages with limit and continue")
    func pagination() async throws {
        try await withFixture { server, client in
            for index in 1...5 {
                try server.seed(core.v1.Pod.new(namespace: "shop", name: "web-\(index)"))
            }
            var names: [String] = []
            var options = ListOptions(limit: 2)
            var pages = 0
            repeat {
                let page = try await client.list(core.v1.Pod.self, namespace: "shop", options: options)
                names += page.items.compactMap(\.metadata.name)
                pages += 1
                options.continue = page.metadata.continue
            } while options.continue?.isEmpty == false && pages < 10
            #expect(names == ["web-1", "web-2", "web-3", "web-4", "web-5"])
            #expect(pages == 3)
            let continued = server.requests.filter { $0.query["continue"] != nil }
            #expect(continued.count == 2)
            #expect(continued.allSatisfy { $0.query["limit"] == "2" })
        }
    }

    // MARK: - Watches

    @Test("a watch decodes ADDED, MODIFIED, DELETED and BOOKMARK events")
    func watchEvents() async throws {
        try await withFixture(bookmarkInterval: .milliseconds(100)) { server, client in
            let start = try await client.list(VirtualService.self, namespace: "shop", options: ListOptions())
            let events = try await client.watch(
                VirtualService.self, namespace: "shop",
                options: WatchOptions(resourceVersion: start.metadata.resourceVersion, timeoutSeconds: 10))
            let request = try #require(server.requests.last)
            #expect(request.query["watch"] == "1")
            #expect(request.query["allowWatchBookmarks"] == "true")
            #expect(request.query["timeoutSeconds"] == "10")

            var created = try await client.create(Self.virtualService("web", hosts: ["web"]))
            created.spec.hosts = ["web", "api"]
            _ = try await client.update(created)
            try await client.delete(VirtualService.self, namespace: "shop", name: "web")

            var seen: [String] = []
            var bookmark: String?
            for try await event in events {
                switch event {
                case .added(let object): seen.append("ADDED \(object.spec.hosts)")
                case .modified(let object): seen.append("MODIFIED \(object.spec.hosts)")
                case .deleted(let object): seen.append("DELETED \(object.metadata.name ?? "")")
                case .bookmark(let version): bookmark = version
                case .error(let status): Issue.record("unexpected ERROR \(status)")
                }
                if seen.count == 3, bookmark != nil { break }
            }
            #expect(seen == [#"ADDED ["web"]"#, #"MODIFIED ["web", "api"]"#, "DELETED web"])
            #expect(bookmark?.isEmpty == false)
        }
    }

    @Test("a watch from an expired version gets a 410 ERROR event")
    func watchExpired() async throws {
        try await withFixture { server, client in
            let start = try await client.list(VirtualService.self, namespace: "shop", options: ListOptions())
            _ = try await client.create(Self.virtualService("web", hosts: ["web"]))
            server.expireHistory()
            let events = try await client.watch(
                VirtualService.self, namespace: "shop",
                options: WatchOptions(resourceVersion: start.metadata.resourceVersion, timeoutSeconds: 10))
            var statuses: [meta.v1.Status] = []
            for try await event in events {
                if case .error(let status) = event { statuses.append(status) }
            }
            #expect(statuses.count == 1)
            #expect(statuses.first?.code == 410)
            let error = KubeClientError(code: .api, message: "", status: statuses.first)
            #expect(error.isGone)
        }
    }

    @Test("a refused watch throws before returning; a cut watch ends with a transport error")
    func watchFailures() async throws {
        try await withFixture { server, client in
            server.failNext(1, status: 403, method: "GET", pathContains: "/virtualservices")
            let refused = await #expect(throws: KubeClientError.self) {
                _ = try await client.watch(VirtualService.self, namespace: nil, options: WatchOptions())
            }
            #expect(
                refused?.httpStatus == 403,
                "the server saw: \(server.requests.map { "\($0.method) \($0.path) \($0.query)" })")
            #expect(refused?.request == "GET /apis/weft.dev/v1alpha1/virtualservices")

            let events = try await client.watch(
                VirtualService.self, namespace: nil, options: WatchOptions(timeoutSeconds: 10))
            server.cutWatches()
            let cut = await #expect(throws: KubeClientError.self) {
                for try await _ in events {}
            }
            #expect(
                cut?.code == .transport,
                "the server saw: \(server.requests.map { "\($0.method) \($0.path) \($0.query)" })")
        }
    }

    // MARK: - Metrics

    @Test("requests are counted by verb and code, and timed")
    func metrics() async throws {
        let metrics = RecordingMetrics()
        try await withMetricsFactory(metrics) {
            try await withFixture { _, client in
                _ = try await client.list(VirtualService.self, namespace: "shop", options: ListOptions())
                _ = try? await client.get(VirtualService.self, namespace: "shop", name: "nope")
            }
        }
        #expect(metrics.count("weft_kube_requests_total", ["code": "200", "verb": "list"]) == 1)
        #expect(metrics.count("weft_kube_requests_total", ["code": "404", "verb": "get"]) == 1)
        #expect(metrics.timings("weft_kube_request_duration_seconds", ["verb": "get"]) == 1)
    }

    // MARK: - Fixture

    static func virtualService(_ name: String, hosts: [String]) -> VirtualService {
        var service = VirtualService()
        service.metadata.namespace = "shop"
        service.metadata.name = name
        service.spec.hosts = hosts
        return service
    }

    /// Runs `body` with a fresh server and a client for it (default namespace `shop`), and shuts both down.
    func withFixture(
        bookmarkInterval: Duration = .seconds(1),
        _ body: (FakeAPIServer, KubeClient) async throws -> Void
    ) async throws {
        try await FakeAPIServer.start(bookmarkInterval: bookmarkInterval).withClient(
            logger: Logger(label: "weft.kube.test", factory: { _ in SwiftLogNoOpLogHandler() }),
            configure: {
                $0.auth = .bearerToken("test-token")
                $0.namespace = "shop"
            },
            requestTimeout: .seconds(10), body)
    }
}

// MARK: - Metrics recorder

/// Counts what the client records, keyed by label and sorted dimensions.
private final class RecordingMetrics: MetricsFactory, Sendable {
    private let values = Mutex<[String: Int64]>([:])

    static func key(_ label: String, _ dimensions: [(String, String)]) -> String {
        label + "{" + dimensions.sorted { $0.0 < $1.0 }.map { "\($0.0)=\($0.1)" }.joined(separator: ",") + "}"
    }

    func count(_ label: String, _ dimensions: [String: String]) -> Int64 {
        self.values.withLock { $0[Self.key(label, dimensions.map { ($0.key, $0.value) })] ?? 0 }
    }

    func timings(_ label: String, _ dimensions: [String: String]) -> Int64 {
        self.count(label, dimensions)
    }

    func add(_ key: String, _ amount: Int64) {
        self.values.withLock { $0[key, default: 0] += amount }
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        Handler(key: Self.key(label, dimensions), metrics: self)
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        Handler(key: Self.key(label, dimensions), metrics: self)
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        Handler(key: Self.key(label, dimensions), metrics: self)
    }

    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}

    /// Counters add their increments; recorders and timers count their observations.
    final class Handler: CounterHandler, RecorderHandler, TimerHandler, Sendable {
        let key: String
        let metrics: RecordingMetrics

        init(key: String, metrics: RecordingMetrics) {
            self.key = key
            self.metrics = metrics
        }

        func increment(by amount: Int64) { self.metrics.add(self.key, amount) }
        func reset() {}
        func record(_ value: Int64) { self.metrics.add(self.key, 1) }
        func record(_ value: Double) { self.metrics.add(self.key, 1) }
        func recordNanoseconds(_ duration: Int64) { self.metrics.add(self.key, 1) }
    }
}
