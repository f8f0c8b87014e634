public import KubeModel
public import Logging
import Metrics
public import ServiceLifecycle
import Synchronization

/// Keeps an ``InformerCache`` of one kind of resource current: list, then watch from the list's version.
///
/// - The list is paged (500 per page) and *replaces* the cache; every key that differs from the old cache
///   (added, changed or deleted) is reported, so nothing is lost across a re-list.
/// - The watch resumes from the last resourceVersion seen (events and bookmarks) whenever the stream ends.
///   An `ERROR` event or a 410 answer (`Expired`/`Gone`) means that version is too old: list again.
/// - Other errors back off exponentially with full jitter (200 ms doubling to 30 s), reset by the next
///   watch event.
/// - Changes are reported as keys through `onChange` after the cache is updated, typically into a
///   ``WorkQueue`` (deduplicating, so bounded by the number of objects); the informer waits for the handler,
///   so no buffer sits in between.
///
/// `run()` ends on cancellation or graceful shutdown.
public final class Informer<R: KubeResource>: Service {
    public struct Configuration: Sendable, Hashable {
        /// One namespace, or nil for all.
        public var namespace: String?
        public var labelSelector: String?
        public var fieldSelector: String?
        /// Objects per list page.
        public var pageSize: Int
        /// The watch's `timeoutSeconds` is drawn from this range, so that watches of many replicas spread out.
        public var watchTimeoutSeconds: ClosedRange<Int>
        public var initialBackoff: Duration
        public var maximumBackoff: Duration

        public init(
            namespace: String? = nil, labelSelector: String? = nil, fieldSelector: String? = nil,
            pageSize: Int = 500, watchTimeoutSeconds: ClosedRange<Int> = 300...600,
            initialBackoff: Duration = .milliseconds(200), maximumBackoff: Duration = .seconds(30)
        ) {
            self.namespace = namespace
            self.labelSelector = labelSelector
            self.fieldSelector = fieldSelector
            self.pageSize = pageSize
            self.watchTimeoutSeconds = watchTimeoutSeconds
            self.initialBackoff = initialBackoff
            self.maximumBackoff = maximumBackoff
        }
    }

    /// The objects seen so far; current once ``hasSynced``.
    public let cache = InformerCache<R>()

    private let api: any KubeAPI
    private let configuration: Configuration
    private let clock: ElapsedClock
    private let logger: Logger
    private let onChange: @Sendable (ObjectKey) async -> Void
    private let synced = SyncLatch()
    private let metrics: InformerMetrics

    /// - Parameters:
    ///   - onChange: Called with the key of every object that was added, changed or deleted, after the cache
    ///     is updated. The informer waits for it: keep it short (``WorkQueue/add(_:)``).
    public init(
        api: any KubeAPI, configuration: Configuration = .init(), clock: any Clock<Duration> = ContinuousClock(),
        logger: Logger = .current, onChange: @escaping @Sendable (ObjectKey) async -> Void = { _ in }
    ) {
        self.api = api
        self.configuration = configuration
        self.clock = ElapsedClock(clock)
        var logger = logger
        logger[metadataKey: "k8s.kind"] = "\(R.kind)"
        if let namespace = configuration.namespace { logger[metadataKey: "k8s.namespace"] = "\(namespace)" }
        self.logger = logger
        self.onChange = onChange
        self.metrics = InformerMetrics(kind: R.kind)
    }

    /// An informer that adds the key of every changed object to `queue`.
    public convenience init(
        api: any KubeAPI, configuration: Configuration = .init(), clock: any Clock<Duration> = ContinuousClock(),
        logger: Logger = .current, queue: WorkQueue<ObjectKey>
    ) {
        self.init(api: api, configuration: configuration, clock: clock, logger: logger) { await queue.add($0) }
    }

    /// Whether the first list has filled the cache (and its keys were reported).
    public var hasSynced: Bool { self.synced.isOpen }

    /// Waits until ``hasSynced``; throws `CancellationError` if the calling task is cancelled first.
    public func waitUntilSynced() async throws {
        try await self.synced.wait()
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown { await self.listAndWatch() }
    }

    // MARK: - Loop

    private enum WatchEnd {
        /// The server closed the stream; resume from the last version.
        case closed(events: Int, lasted: Duration)
        /// The version expired (410): list again.
        case expired
    }

    private func listAndWatch() async {
        var backoff = JitteredBackoff(
            initial: self.configuration.initialBackoff,
            maximum: self.configuration.maximumBackoff)
        var needsList = true
        while !Task.isCancelled {
            var listing = needsList
            do {
                if needsList {
                    try await self.list()
                    needsList = false
                    listing = false
                }
                switch try await self.watch(backoff: &backoff) {
                case .closed(let events, let lasted):
                    self.metrics.restarted(.closed)
                    // A stream that ends at once with nothing in it must not become a busy loop.
                    if events == 0 && lasted < .seconds(1) { try await self.clock.sleep(for: backoff.next()) }
                case .expired:
                    self.expired()
                    needsList = true
                }
            } catch {
                if Task.isCancelled { return }
                if Self.isGone(error) && !listing {
                    self.expired()
                    needsList = true
                    continue
                }
                if !listing { self.metrics.restarted(.error) }
                let delay = backoff.next()
                self.logger.info(
                    listing ? "List failed; retrying" : "Watch failed; retrying",
                    metadata: ["error": "\(error)", "informer.retry_seconds": "\(delay / .seconds(1))"])
                try? await self.clock.sleep(for: delay)
            }
        }
    }

    private func expired() {
        self.metrics.restarted(.expired)
        self.metrics.relists.increment()
        self.logger.debug("Watch version expired; listing again")
    }

    /// Lists every page, replaces the cache, reports what differs, and marks the informer synced.
    private func list() async throws {
        let base = ListOptions(
            labelSelector: self.configuration.labelSelector,
            fieldSelector: self.configuration.fieldSelector)
        var options = base
        options.limit = self.configuration.pageSize
        var items: [R] = []
        var version: String?
        while true {
            let page: meta.v1.List<R>
            do {
                page = try await self.api.list(R.self, namespace: self.configuration.namespace, options: options)
            } catch  where options.continue != nil && Self.isGone(error) {
                // The continue token expired between pages: take the whole list at once.
                options = base
                items = []
                continue
            }
            items.append(contentsOf: page.items)
            version = page.metadata.resourceVersion ?? version
            guard let next = page.metadata.continue, !next.isEmpty else { break }
            options.continue = next
        }
        let changed = self.cache.replace(with: items, resourceVersion: version)
        self.metrics.cachedObjects.record(self.cache.count)
        self.logger.debug(
            "Listed",
            metadata: [
                "informer.objects": "\(items.count)", "informer.changed": "\(changed.count)",
                "informer.resource_version": "\(version ?? "")",
            ])
        for key in changed { await self.onChange(key) }
        if !self.synced.isOpen {
            self.synced.open()
            self.logger.debug("Informer synced", metadata: ["informer.objects": "\(items.count)"])
        }
    }

    /// Watches from the cache's version until the stream ends, applying every event.
    private func watch(backoff: inout JitteredBackoff) async throws -> WatchEnd {
        let started = self.clock.now
        let options = WatchOptions(
            resourceVersion: self.cache.resourceVersion, allowWatchBookmarks: true,
            timeoutSeconds: Int.random(in: self.configuration.watchTimeoutSeconds),
            labelSelector: self.configuration.labelSelector, fieldSelector: self.configuration.fieldSelector)
        let events = try await self.api.watch(R.self, namespace: self.configuration.namespace, options: options)
        var count = 0
        for try await event in events {
            if Task.isCancelled { break }
            count += 1
            backoff.reset()
            switch event {
            case .added(let object), .modified(let object):
                if self.cache.apply(object, resourceVersion: event.resourceVersion) {
                    self.metrics.cachedObjects.record(self.cache.count)
                    await self.onChange(object.key)
                }
            case .deleted(let object):
                if self.cache.delete(object, resourceVersion: event.resourceVersion) {
                    self.metrics.cachedObjects.record(self.cache.count)
                    await self.onChange(object.key)
                }
            case .bookmark(let version):
                if !version.isEmpty { self.cache.setResourceVersion(version) }
            case .error(let status):
                if Self.isGone(status) { return .expired }
                throw KubeClientError(code: .api, message: status.message ?? "watch error", status: status)
            }
        }
        return .closed(events: count, lasted: self.clock.now - started)
    }

    private static func isGone(_ error: any Error) -> Bool {
        if let error = error as? KubeClientError { return error.isGone }
        if let status = error as? meta.v1.Status { return self.isGone(status) }
        return false
    }

    private static func isGone(_ status: meta.v1.Status) -> Bool {
        status.code == 410 || status.reason == "Expired" || status.reason == "Gone"
    }
}

// MARK: - Metrics

struct InformerMetrics: Sendable {
    enum RestartReason: String, CaseIterable {
        case closed
        case expired
        case error
    }

    let restarts: [RestartReason: Counter]
    let relists: Counter
    let cachedObjects: Gauge

    init(kind: String) {
        var restarts: [RestartReason: Counter] = [:]
        for reason in RestartReason.allCases {
            restarts[reason] = Counter(
                label: "weft_informer_watch_restarts_total", dimensions: [("kind", kind), ("reason", reason.rawValue)])
        }
        self.restarts = restarts
        self.relists = Counter(label: "weft_informer_relists_total", dimensions: [("kind", kind)])
        self.cachedObjects = Gauge(label: "weft_informer_cached_objects", dimensions: [("kind", kind)])
    }

    func restarted(_ reason: RestartReason) {
        self.restarts[reason]?.increment()
    }
}

// MARK: - Backoff

/// Exponential backoff with full jitter: the n-th delay is uniform in [0, min(maximum, initial × 2ⁿ)].
struct JitteredBackoff: Sendable {
    let initial: Duration
    let maximum: Duration
    private(set) var attempts = 0

    init(initial: Duration, maximum: Duration) {
        self.initial = initial
        self.maximum = maximum
    }

    /// The ceiling of the next delay, without jitter.
    var ceiling: Duration {
        var ceiling = self.initial
        for _ in 0..<self.attempts {
            guard ceiling < self.maximum else { break }
            ceiling *= 2
        }
        return min(ceiling, self.maximum)
    }

    mutating func next() -> Duration {
        let ceiling = self.ceiling / .seconds(1)
        self.attempts += 1
        return .seconds(Double.random(in: 0...max(0, ceiling)))
    }

    mutating func reset() {
        self.attempts = 0
    }
}

// MARK: - Synced latch

/// Opens once; waiters resume when it opens and throw when cancelled.
final class SyncLatch: Sendable {
    private struct State {
        var isOpen = false
        var nextID = 0
        var waiters: [Int: CheckedContinuation<Void, any Error>] = [:]
    }

    private let state = Mutex(State())

    var isOpen: Bool { self.state.withLock { $0.isOpen } }

    func open() {
        let waiters = self.state.withLock { state in
            state.isOpen = true
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    func wait() async throws {
        let id = self.state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let result = self.state.withLock { state -> Result<Void, any Error>? in
                    if state.isOpen { return .success(()) }
                    // Checked under the lock: a cancellation handler that ran before this found no waiter.
                    if Task.isCancelled { return .failure(CancellationError()) }
                    state.waiters[id] = continuation
                    return nil
                }
                if let result { continuation.resume(with: result) }
            }
        } onCancel: {
            let waiter = self.state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume(throwing: CancellationError())
        }
    }
}
