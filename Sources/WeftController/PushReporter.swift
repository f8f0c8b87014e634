import Foundation
import KubeClient
import KubeModel
import Logging
import ServiceLifecycle
import Synchronization

/// Shares what each replica's proxies acknowledged, so that the leader's `Programmed` counts every proxy, not only
/// the ones streaming from it (a proxy connects to whichever replica the push Service picks).
///
/// Every replica writes its ``PushReport`` as the ConfigMap `weft-push-report-<pod>` in the root namespace
/// (server-side apply, field manager `weft-controller`) when it changes, at most once per `interval`, and at
/// least every `renewal` (the write time changes, so readers see it alive); on graceful shutdown it deletes it.
/// Every replica watches the reports (label `weft.dev/push-report=true`) and hands the other replicas' fresh ones
/// to its ``PushHub``. A report counts as stale when it has not changed for `expiry` on this replica's clock
/// (observed time, as leader election does: no trust in other machines' clocks), e.g. its replica was killed.
public final class PushReporter: Service {
    public struct Configuration: Sendable {
        public var namespace: String
        /// This replica's leader-election identity, written into the report.
        public var replica: String
        /// The report's ConfigMap name (``PushReport/configMapName(host:)``).
        public var name: String
        public var interval: Duration
        public var renewal: Duration
        public var expiry: Duration

        public init(
            namespace: String, replica: String, name: String, interval: Duration = .seconds(1),
            renewal: Duration = .seconds(30), expiry: Duration = .seconds(90)
        ) {
            self.namespace = namespace
            self.replica = replica
            self.name = name
            self.interval = interval
            self.renewal = renewal
            self.expiry = expiry
        }
    }

    private struct Seen {
        var report: PushReport
        var resourceVersion: String?
        /// When this replica saw it change (time on `clock` since the reporter started).
        var changedAt: Duration
    }

    private let api: any KubeAPI
    private let hub: PushHub
    private let configuration: Configuration
    private let clock: any Clock<Duration>
    private let now: @Sendable () -> Date
    private let logger: Logger
    private let informer: Informer<core.v1.ConfigMap>
    /// The other replicas' reports as this replica saw them change, by ConfigMap name.
    private let seen = Mutex<[String: Seen]>([:])
    /// Time on `clock` since the reporter was made.
    private let elapsed: @Sendable () -> Duration

    /// - Parameters:
    ///   - clock: what the writer's ticks sleep on (tests step a `TestClock`).
    ///   - now: the wall time written into the report.
    public init(
        api: any KubeAPI, hub: PushHub, configuration: Configuration, clock: any Clock<Duration> = ContinuousClock(),
        now: @escaping @Sendable () -> Date = { Date() }, logger: Logger
    ) {
        self.api = api
        self.hub = hub
        self.configuration = configuration
        self.clock = clock
        self.elapsed = Self.elapsed(on: clock)
        self.now = now
        self.logger = logger
        let changed = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        self.changes = changed
        self.informer = Informer<core.v1.ConfigMap>(
            api: api,
            configuration: .init(namespace: configuration.namespace, labelSelector: "\(PushReport.label)=true"),
            logger: logger, onChange: { _ in changed.continuation.yield() })
    }

    private let changes: (stream: AsyncStream<Void>, continuation: AsyncStream<Void>.Continuation)

    private static func elapsed<C: Clock<Duration>>(on clock: C) -> @Sendable () -> Duration {
        let start = clock.now
        return { start.duration(to: clock.now) }
    }

    public func run() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await self.informer.run() }
            group.addTask {
                for await _ in self.changes.stream.cancelOnGracefulShutdown() { self.refresh() }
            }
            group.addTask { await self.write() }
        }
    }

    /// Writes the report while running, then deletes it.
    private func write() async {
        var written: PushReport?
        var writtenAt: Duration?
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let report = self.hub.report(replica: self.configuration.replica)
            let due = writtenAt.map { self.elapsed() - $0 >= self.configuration.renewal } ?? true
            if report != written || due {
                do {
                    try await self.apply(report)
                    written = report
                    writtenAt = self.elapsed()
                } catch {
                    self.logger.warning(
                        "could not write the push report; retrying",
                        metadata: ["error": "\(error)", "k8s.configmap": "\(self.configuration.name)"])
                }
            }
            // Reports that stopped changing expire even when no event comes.
            self.refresh()
            do {
                try await cancelWhenGracefulShutdown {
                    try await self.clock.sleep(for: self.configuration.interval, tolerance: nil)
                }
            } catch {
                break
            }
        }
        do {
            try await self.api.ignoringCancellation(timeout: .seconds(2)).delete(
                core.v1.ConfigMap.self, namespace: self.configuration.namespace, name: self.configuration.name)
        } catch {
            self.logger.info("could not delete the push report", metadata: ["error": "\(error)"])
        }
    }

    private func apply(_ report: PushReport) async throws {
        let configMap = try report.configMap(
            name: self.configuration.name, namespace: self.configuration.namespace, renewed: self.now())
        _ = try await self.api.patch(
            core.v1.ConfigMap.self, namespace: self.configuration.namespace, name: self.configuration.name,
            patch: .apply(try JSONValue.from(encodable: configMap)),
            options: PatchOptions(fieldManager: "weft-controller", force: true))
    }

    /// Reads the reports from the informer's cache, notes which changed, and gives the hub the fresh ones.
    private func refresh() {
        let now = self.elapsed()
        let expiry = self.configuration.expiry
        let own = self.configuration.name
        let objects = self.informer.cache.list()
        let fresh = self.seen.withLock { seen -> [PushReport] in
            var next: [String: Seen] = [:]
            for object in objects {
                guard let name = object.metadata.name, name != own, let report = PushReport(configMap: object),
                    report.replica != self.configuration.replica
                else { continue }
                if let known = seen[name], known.resourceVersion == object.metadata.resourceVersion {
                    next[name] = known
                } else {
                    next[name] = Seen(report: report, resourceVersion: object.metadata.resourceVersion, changedAt: now)
                }
            }
            seen = next
            return next.values.filter { now - $0.changedAt < expiry }.sorted { $0.changedAt < $1.changedAt }
                .map(\.report)
        }
        self.hub.remoteReports(fresh)
    }
}
