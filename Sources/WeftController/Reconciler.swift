import Foundation
import Logging
import Metrics
import ServiceLifecycle
import Synchronization
import WeftCompiler

/// Receives a compile result after the state has recorded it: the status writer, later the push server.
public protocol CompileResultSink: Sendable {
    func apply(_ result: CompileResult, snapshot: WeftSnapshot, state: ControllerState) async
}

/// Works on a compile result before the state and the sinks see it: the push hub sends configs and adds the
/// `Programmed` condition.
public protocol CompileResultStage: Sendable {
    func process(_ result: inout CompileResult, snapshot: WeftSnapshot) async
}

/// Watches a snapshot source, debounces its changes (quiet 50 ms, at most 1 s), compiles, and hands the
/// result to the state and the sinks. Level-triggered: every compile reads the whole current state.
public final class Reconciler: Service {
    private let source: any SnapshotSource
    private let state: ControllerState
    private let stages: [any CompileResultStage]
    private let sinks: [any CompileResultSink]
    private let logger: Logger
    private let quiet: Duration
    private let maxDelay: Duration
    private let now: @Sendable () -> Date
    private let changes: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation
    private let pending = Mutex<UInt64>(0)
    private let reconciles = Counter(label: "weft_controller_reconciles_total")
    private let duration = Timer(label: "weft_controller_reconcile_duration_seconds", preferredDisplayUnit: .seconds)
    private let proxies = Gauge(label: "weft_controller_proxies")
    private let resources = Gauge(label: "weft_controller_resources")

    public init(
        source: any SnapshotSource, state: ControllerState, stages: [any CompileResultStage] = [],
        sinks: [any CompileResultSink] = [], logger: Logger, quiet: Duration = .milliseconds(50),
        maxDelay: Duration = .seconds(1),
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.source = source
        self.state = state
        self.stages = stages
        self.sinks = sinks
        self.logger = logger
        self.quiet = quiet
        self.maxDelay = maxDelay
        self.now = now
        (self.changes, self.continuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Marks that something changed; cheap, callable from anywhere.
    public func signal() {
        self.pending.withLock { $0 &+= 1 }
        self.continuation.yield()
    }

    /// Runs the source and the compile loop; returns on graceful shutdown (the compile in progress finishes)
    /// or cancellation.
    public func run() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask {
                // The source's loops (the folder poll, the informers) run until cancelled: end them with the
                // compile loop, or a SIGTERM would leave the process running.
                do {
                    try await cancelWhenGracefulShutdown {
                        try await self.source.run(changed: { [weak self] in self?.signal() })
                    }
                } catch  where Task.isShuttingDownGracefully || Task.isCancelled {
                    // Stopped, as asked.
                }
            }
            group.addTask {
                try await self.loop()
            }
        }
    }

    private func loop() async throws {
        var session = CompileSession()
        let clock = ContinuousClock()
        for await _ in self.changes.cancelOnGracefulShutdown() {
            var debounce = DebounceStateMachine(quiet: self.quiet, maxDelay: self.maxDelay)
            var seen = self.pending.withLock { $0 }
            debounce.changed(at: clock.now)
            waiting: while true {
                switch debounce.poll(at: clock.now) {
                case .idle, .compile:
                    break waiting
                case .wait(let until):
                    try await Task.sleep(until: until, clock: clock)
                    let latest = self.pending.withLock { $0 }
                    if latest != seen {
                        seen = latest
                        debounce.changed(at: clock.now)
                    }
                }
            }
            try await self.reconcile(&session, clock: clock)
        }
    }

    private func reconcile(_ session: inout CompileSession, clock: ContinuousClock) async throws {
        // Never compile a partial view: a Service not listed yet would look missing and every reference to it
        // would be reported broken.
        while !(await self.source.hasSynced) {
            if Task.isShuttingDownGracefully { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        let snapshot = await self.source.snapshot()
        let start = clock.now
        var result = session.compile(snapshot)
        let elapsed = clock.now - start
        for stage in self.stages {
            await stage.process(&result, snapshot: snapshot)
        }
        self.duration.recordNanoseconds(elapsed.nanoseconds)
        self.reconciles.increment()
        self.proxies.record(result.proxies.count)
        self.resources.record(result.statuses.count)
        let changed = self.state.publish(result, of: snapshot, now: self.now())
        self.logger.info(
            "compiled",
            metadata: [
                "compile.proxies": "\(result.proxies.count)", "compile.resources": "\(result.statuses.count)",
                "compile.changed_resources": "\(changed.count)",
                "compile.errors": "\(result.diagnostics.filter { $0.severity == .error }.count)",
                "compile.duration_ms": "\(elapsed.nanoseconds / 1_000_000)",
            ])
        for sink in self.sinks {
            await sink.apply(result, snapshot: snapshot, state: self.state)
        }
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = self.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
