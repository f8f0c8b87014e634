import Foundation
import KubeModel
import Logging
import Metrics
import ServiceLifecycle
import Synchronization
import Testing
import WeftTesting

@testable import KubeClient

@Suite("Informer")
struct InformerTests {
    typealias ConfigMap = core.v1.ConfigMap

    // MARK: - Cache (pure)

    @Test("The cache indexes by namespace and label, and a replace reports every difference")
    func cacheIndexes() {
        let cache = InformerCache<ConfigMap>()
        let a = configMap("shop", "a", labels: ["app": "web", "tier": "front"])
        let b = configMap("shop", "b", labels: ["app": "db"])
        let c = configMap("ops", "c", labels: ["app": "web"])
        #expect(cache.replace(with: [b, a, c], resourceVersion: "10") == [c.key, a.key, b.key])
        #expect(cache.count == 3)
        #expect(cache.resourceVersion == "10")
        #expect(cache.list(namespace: "shop").map(\.key) == [a.key, b.key])
        #expect(cache.list().map(\.key) == [c.key, a.key, b.key])
        #expect(cache.list(labelSelector: .init(matchLabels: ["app": "web"])).map(\.key) == [c.key, a.key])
        #expect(cache.list(labelSelector: .init(matchLabels: ["app": "web"]), namespace: "shop").map(\.key) == [a.key])
        let notDB = meta.v1.LabelSelector(matchExpressions: [.init(key: "app", operator: "NotIn", values: ["db"])])
        #expect(cache.list(labelSelector: notDB).map(\.key) == [c.key, a.key])
        #expect(cache.list(labelSelector: .init()).count == 3)

        var relabelled = a
        relabelled.metadata.labels = ["app": "api"]
        #expect(cache.apply(relabelled, resourceVersion: "11"))
        #expect(!cache.apply(relabelled, resourceVersion: "12"))
        #expect(cache.resourceVersion == "12")
        #expect(cache.list(labelSelector: .init(matchLabels: ["app": "web"])).map(\.key) == [c.key])
        #expect(cache.list(labelSelector: .init(matchLabels: ["app": "api"])).map(\.key) == [a.key])

        // A re-list: b is gone, c changed, d is new, a is as cached.
        var changedC = c
        changedC.data = ["k": "v"]
        let d = configMap("ops", "d")
        #expect(cache.replace(with: [relabelled, changedC, d], resourceVersion: "20") == [c.key, d.key, b.key])
        #expect(cache.get(b.key) == nil)
        #expect(cache.list(namespace: "shop").map(\.key) == [a.key])
        #expect(cache.delete(d, resourceVersion: "21"))
        #expect(!cache.delete(d, resourceVersion: "22"))
        #expect(cache.keys == [c.key, a.key])
    }

    @Test("Backoff has full jitter, doubles from 200 ms and stops at 30 s")
    func backoff() {
        var backoff = JitteredBackoff(initial: .milliseconds(200), maximum: .seconds(30))
        var ceilings: [Duration] = []
        for _ in 0..<10 {
            ceilings.append(backoff.ceiling)
            let delay = backoff.next()
            #expect(delay >= .zero && delay <= ceilings.last ?? .zero)
        }
        #expect(
            ceilings.prefix(5) == [
                .milliseconds(200), .milliseconds(400), .milliseconds(800), .milliseconds(1600),
                .milliseconds(3200),
            ])
        #expect(ceilings.last == .seconds(30))
        backoff.reset()
        #expect(backoff.ceiling == .milliseconds(200))
    }

    // MARK: - Through FakeAPIServer

    @Test("Syncs with a paged list, then follows creates, updates and deletes")
    func syncAndFollow() async throws {
        try await withFakeCluster { fake, client in
            for index in 0..<7 {
                _ = try await client.create(configMap("shop", "cm-\(index)", labels: ["app": index < 3 ? "web" : "db"]))
            }
            let recorder = KeyRecorder()
            let informer = Informer<ConfigMap>(
                api: client, configuration: .init(namespace: "shop", pageSize: 3), logger: testLogger,
                onChange: recorder.record)
            try await running(informer) {
                try await informer.waitUntilSynced()
                #expect(informer.hasSynced)
                #expect(informer.cache.count == 7)
                #expect(await becomesTrue { recorder.keys.count == 7 })
                #expect(informer.cache.list(labelSelector: .init(matchLabels: ["app": "web"])).count == 3)
                #expect(fake.count(method: "GET", pathContains: "/namespaces/shop/configmaps") >= 3)

                _ = try await client.create(configMap("shop", "new"))
                var changed = try await client.get(ConfigMap.self, namespace: "shop", name: "cm-0")
                changed.data = ["k": "2"]
                _ = try await client.update(changed)
                try await client.delete(ConfigMap.self, namespace: "shop", name: "cm-1")
                _ = try await client.create(configMap("other", "elsewhere"))

                #expect(
                    await becomesTrue {
                        informer.cache.get(ObjectKey(namespace: "shop", name: "new")) != nil
                            && informer.cache.get(ObjectKey(namespace: "shop", name: "cm-0"))?.data == ["k": "2"]
                            && informer.cache.get(ObjectKey(namespace: "shop", name: "cm-1")) == nil
                    })
                #expect(informer.cache.count == 7)
                #expect(informer.cache.get(ObjectKey(namespace: "other", name: "elsewhere")) == nil)
                // The change handler runs after the cache is updated: wait for it too.
                #expect(
                    await becomesTrue {
                        Array(recorder.keys.suffix(3)) == [
                            ObjectKey(namespace: "shop", name: "new"), ObjectKey(namespace: "shop", name: "cm-0"),
                            ObjectKey(namespace: "shop", name: "cm-1"),
                        ]
                    })

                // Bookmarks move the version on even when nothing in the namespace changes.
                #expect(await becomesTrue { informer.cache.resourceVersion == fake.resourceVersion })

                let watches = fake.requests.filter { $0.query["watch"] != nil }
                let watch = try #require(watches.first)
                #expect(watch.path == "/api/v1/namespaces/shop/configmaps")
                #expect(watch.query["allowWatchBookmarks"] == "true")
                #expect(watch.query["resourceVersion"].flatMap(Int.init) != nil)
                let timeout = try #require(watch.query["timeoutSeconds"].flatMap(Int.init))
                #expect((300...600).contains(timeout))
                let pages = fake.requests.filter {
                    $0.method == "GET" && $0.path == watch.path && $0.query["watch"] == nil
                }
                #expect(pages.count == 3)
                #expect(pages.allSatisfy { $0.query["limit"] == "3" })
            }
        }
    }

    @Test("A cut watch resumes from the last version without losing an update made while it was down")
    func survivesCutWatches() async throws {
        try await withFakeCluster { fake, client in
            _ = try await client.create(configMap("shop", "a"))
            let gated = GatedAPI(client)
            let recorder = KeyRecorder()
            let informer = Informer<ConfigMap>(api: gated, logger: testLogger, onChange: recorder.record)
            try await running(informer) {
                try await informer.waitUntilSynced()
                // Registered in the server's store (it answers the watch's head a moment before), so the cut hits it.
                #expect(await becomesTrue { gated.watchesOpened == 1 && fake.openWatches == 1 })

                // Hold the informer between streams while the object changes.
                gated.watchGate.close()
                fake.cutWatches()
                #expect(await becomesTrue { gated.watchGate.waiting == 1 })
                var changed = try await client.get(ConfigMap.self, namespace: "shop", name: "a")
                changed.data = ["while": "cut"]
                _ = try await client.update(changed)
                gated.watchGate.open()

                #expect(
                    await becomesTrue {
                        informer.cache.get(ObjectKey(namespace: "shop", name: "a"))?.data == ["while": "cut"]
                    })
                // The change handler runs after the cache is updated: wait for it too.
                #expect(
                    await becomesTrue {
                        recorder.keys == [
                            ObjectKey(namespace: "shop", name: "a"), ObjectKey(namespace: "shop", name: "a"),
                        ]
                    })
                // Resumed by a watch, not by a new list.
                #expect(gated.lists == 1)
                #expect(gated.watchesOpened == 2)
            }
        }
    }

    @Test("An expired version makes the informer list again and report a deletion made meanwhile")
    func relistsAfterExpiry() async throws {
        try await withFakeCluster { fake, client in
            for name in ["a", "b", "c"] { _ = try await client.create(configMap("shop", name)) }
            let gated = GatedAPI(client)
            let recorder = KeyRecorder()
            let metrics = InformerMetricsRecorder()
            let informer = withMetricsFactory(metrics) {
                Informer<ConfigMap>(api: gated, logger: testLogger, onChange: recorder.record)
            }
            try await running(informer) {
                try await informer.waitUntilSynced()
                // Registered in the server's store (it answers the watch's head a moment before), so the cut hits it.
                #expect(await becomesTrue { gated.watchesOpened == 1 && fake.openWatches == 1 })
                recorder.reset()

                gated.watchGate.close()
                fake.cutWatches()
                #expect(await becomesTrue { gated.watchGate.waiting == 1 })
                try await client.delete(ConfigMap.self, namespace: "shop", name: "b")
                _ = try await client.create(configMap("shop", "d"))
                fake.expireHistory()
                gated.watchGate.open()

                #expect(
                    await becomesTrue {
                        informer.cache.get(ObjectKey(namespace: "shop", name: "b")) == nil
                            && informer.cache.get(ObjectKey(namespace: "shop", name: "d")) != nil
                    })
                #expect(
                    await becomesTrue {
                        Set(recorder.keys) == [
                            ObjectKey(namespace: "shop", name: "b"), ObjectKey(namespace: "shop", name: "d"),
                        ]
                    })
                #expect(gated.lists == 2)
                #expect(informer.cache.keys.map(\.name) == ["a", "c", "d"])
                let kind = ("kind", "ConfigMap")
                #expect(metrics.value("weft_informer_relists_total", [kind]) == 1)
                #expect(metrics.value("weft_informer_watch_restarts_total", [kind, ("reason", "expired")]) == 1)
                #expect(metrics.value("weft_informer_cached_objects", [kind]) == 3)
            }
        }
    }

    @Test("Failed watches back off exponentially, then resume")
    func backsOffOnErrors() async throws {
        try await withFakeCluster { fake, client in
            _ = try await client.create(configMap("shop", "a"))
            let clock = TestClock()
            let gated = GatedAPI(client)
            let metrics = InformerMetricsRecorder()
            let informer = withMetricsFactory(metrics) {
                Informer<ConfigMap>(api: gated, clock: clock, logger: testLogger)
            }
            try await running(informer) {
                try await informer.waitUntilSynced()
                #expect(await becomesTrue { gated.watchesOpened == 1 })
                // An event in the stream, so that its end is an ordinary end, not an empty stream.
                _ = try await client.create(configMap("shop", "b"))
                #expect(await becomesTrue { informer.cache.count == 2 })

                // The path of a watch is that of the list; only watches run in this phase.
                fake.failNext(3, status: 500, method: "GET", pathContains: "/configmaps")
                fake.cutWatches()
                // The cut stream either ends (watch again at once) or breaks (back off first); then three
                // failures back off 200 ms, 400 ms, 800 ms at most (full jitter).
                var ceiling = Duration.milliseconds(200)
                var sleeps = 0
                while gated.watchesOpened < 2 {
                    try #require(await becomesTrue { clock.sleeperCount > 0 || gated.watchesOpened == 2 })
                    guard let deadline = clock.nextDeadline else { continue }
                    let delay = deadline.offset - clock.now.offset
                    #expect(delay >= .zero && delay <= ceiling, "sleep \(sleeps): \(delay)")
                    clock.advance(by: delay)
                    ceiling *= 2
                    sleeps += 1
                    try #require(sleeps <= 4)
                }
                #expect(sleeps >= 3)
                #expect(gated.watchesAttempted == 5)
                #expect(await becomesTrue { gated.watchesOpened == 2 })
                _ = try await client.create(configMap("shop", "c"))
                #expect(await becomesTrue { informer.cache.count == 3 })
                #expect(gated.lists == 1)
                let restarts = metrics.value(
                    "weft_informer_watch_restarts_total", [("kind", "ConfigMap"), ("reason", "error")])
                #expect((3...4).contains(restarts ?? 0))
            }
        }
    }
}

// MARK: - Helpers

func configMap(_ namespace: String, _ name: String, labels: [String: String]? = nil) -> core.v1.ConfigMap {
    var object = core.v1.ConfigMap.new(namespace: namespace, name: name)
    object.metadata.labels = labels
    return object
}

/// Records the keys an informer reports.
final class KeyRecorder: Sendable {
    private let recorded = Mutex<[ObjectKey]>([])

    var keys: [ObjectKey] { self.recorded.withLock { $0 } }

    var record: @Sendable (ObjectKey) async -> Void {
        { key in self.recorded.withLock { $0.append(key) } }
    }

    func reset() {
        self.recorded.withLock { $0 = [] }
    }
}

/// A gate tasks pass while it is open and wait at while it is closed (or until they are cancelled).
final class Gate: Sendable {
    private struct State {
        var isOpen = true
        var nextID = 0
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
    }

    private let state = Mutex(State())

    var waiting: Int { self.state.withLock { $0.waiters.count } }

    func close() {
        self.state.withLock { $0.isOpen = false }
    }

    func open() {
        let waiters = self.state.withLock { state in
            state.isOpen = true
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    func pass() async {
        let id = self.state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let passes = self.state.withLock { state in
                    if state.isOpen || Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if passes { continuation.resume() }
            }
        } onCancel: {
            self.state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }
}

/// `KubeAPI` through a real client, with a gate in front of watches and counts of lists and watches, so that
/// tests can change the cluster while the informer is between two watches.
final class GatedAPI: KubeAPI {
    let base: any KubeAPI
    let watchGate = Gate()
    private let counts = Mutex((lists: 0, attempted: 0, opened: 0))

    init(_ base: any KubeAPI) {
        self.base = base
    }

    var lists: Int { self.counts.withLock { $0.lists } }
    var watchesAttempted: Int { self.counts.withLock { $0.attempted } }
    var watchesOpened: Int { self.counts.withLock { $0.opened } }

    func list<R: KubeResource>(_ type: R.Type, namespace: String?, options: ListOptions) async throws
        -> meta.v1.List<R>
    {
        let list = try await self.base.list(type, namespace: namespace, options: options)
        if list.metadata.continue?.isEmpty ?? true { self.counts.withLock { $0.lists += 1 } }
        return list
    }

    func watch<R: KubeResource>(_ type: R.Type, namespace: String?, options: WatchOptions) async throws
        -> WatchEvents<R>
    {
        await self.watchGate.pass()
        try Task.checkCancellation()
        self.counts.withLock { $0.attempted += 1 }
        let events = try await self.base.watch(type, namespace: namespace, options: options)
        self.counts.withLock { $0.opened += 1 }
        return events
    }

    func get<R: KubeResource>(_ type: R.Type, namespace: String?, name: String) async throws -> R {
        try await self.base.get(type, namespace: namespace, name: name)
    }

    func create<R: KubeResource>(_ object: R) async throws -> R {
        try await self.base.create(object)
    }

    func update<R: KubeResource>(_ object: R) async throws -> R {
        try await self.base.update(object)
    }

    func updateStatus<R: KubeResource>(_ object: R) async throws -> R {
        try await self.base.updateStatus(object)
    }

    func patch<R: KubeResource>(
        _ type: R.Type, namespace: String?, name: String, patch: KubePatch, options: PatchOptions
    ) async throws -> R {
        try await self.base.patch(type, namespace: namespace, name: name, patch: patch, options: options)
    }

    func delete<R: KubeResource>(_ type: R.Type, namespace: String?, name: String) async throws {
        try await self.base.delete(type, namespace: namespace, name: name)
    }

    func ignoringCancellation(timeout: Duration) -> any KubeAPI {
        self.base.ignoringCancellation(timeout: timeout)
    }
}
