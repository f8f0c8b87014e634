import Logging
import ServiceLifecycle
import Synchronization
import WeftController

/// Runs the demo once the controller and the listeners are up: starts every proxy's identity and push clients,
/// waits until every proxy holds its SVID and runs its config, then sends the load while it shows the traffic
/// every second and the controller's events (config versions, ACKs, conditions) as they happen. Returns when the
/// load is done (`--requests`, `--duration`) or on a graceful shutdown (Ctrl-C, SIGTERM); the group then stops
/// everything else.
final class DemoDriver: Service {
    struct Outcome: Sendable {
        var seconds: Double
        var requests: Int
        /// The controller's view of the proxies when the traffic stopped (before the push streams close).
        var proxies: [PushHub.ProxyStatus] = []
    }

    private let mesh: DemoMesh
    private let load: DemoLoad
    private let stats: DemoStats
    private let console: DemoConsole
    private let logger: Logger
    private let clock = ContinuousClock()
    private let started: ContinuousClock.Instant
    private let result = Mutex<Outcome?>(nil)

    init(mesh: DemoMesh, load: DemoLoad, stats: DemoStats, console: DemoConsole, logger: Logger) {
        self.mesh = mesh
        self.load = load
        self.stats = stats
        self.console = console
        self.logger = logger
        self.started = self.clock.now
    }

    /// The traffic's duration and answered requests; nil when the traffic never started.
    var outcome: Outcome? { self.result.withLock { $0 } }

    func run() async throws {
        guard let pushPort = await Self.poll({ self.mesh.push.listeningPort }),
            let httpPort = await Self.poll({ self.mesh.http.listeningPort })
        else { throw DemoError("the controller did not start listening within 60 s") }
        self.event(
            "controller on 127.0.0.1: push stream and CA (gRPC, TLS) on \(pushPort); "
                + "http://127.0.0.1:\(httpPort)/status and /proxies (weftctl proxy-status --controller "
                + "http://127.0.0.1:\(httpPort))")
        let clients = ServiceGroup(
            configuration: .init(
                services: try self.mesh.clients(pushPort: pushPort, logger: self.logger), logger: self.logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await clients.run() }
            do {
                try await self.session()
            } catch {
                await clients.triggerGracefulShutdown()
                throw error
            }
            await clients.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    private func session() async throws {
        var monitor = DemoMonitor()
        let count = self.mesh.nodes.count
        self.event("\(count) proxies: getting SVIDs from the controller's CA and configs over the push stream")
        var ready = false
        for _ in 0..<1200 {
            self.emit(&monitor)
            if self.mesh.syncedProxies == count, self.mesh.nodes.allSatisfy({ $0.store.current != nil }) {
                ready = true
                break
            }
            if Task.isShuttingDownGracefully || Task.isCancelled { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        guard ready else {
            throw DemoError(
                "only \(self.mesh.syncedProxies)/\(count) proxies got their certificate and config within 60 s; "
                    + "run with --log-level info to see why")
        }
        self.emit(&monitor)
        var target = "at \(self.load.rate) requests/s"
        if let requests = self.load.requests { target += ", \(requests) requests" }
        if let duration = self.load.duration { target += ", for \(duration)" }
        self.event("all \(count) proxies SYNCED; sending traffic \(target)")

        let trafficStart = self.clock.now
        let load = self.load
        let stats = self.stats
        let port: @Sendable () -> Int? = { [mesh] in mesh.node("loadgen")?.outbound.listeningPort }
        let answered = await withTaskGroup(of: Int?.self) { group in
            group.addTask { await cancelWhenGracefulShutdown { await load.run(port: port, stats: stats) } }
            group.addTask { [monitor] in
                await self.watch(monitor: monitor)
                return nil
            }
            var answered = 0
            if let first = await group.next() { answered = first ?? 0 }
            group.cancelAll()
            return answered
        }
        let (seconds, attoseconds) = (self.clock.now - trafficStart).components
        let outcome = Outcome(
            seconds: Double(seconds) + Double(attoseconds) / 1e18, requests: answered, proxies: self.mesh.hub.proxies)
        self.result.withLock { $0 = outcome }
    }

    /// Shows the events every 100 ms and the traffic every second, until cancelled.
    private func watch(monitor initial: DemoMonitor) async {
        var monitor = initial
        var lastTick = self.clock.now
        var lastRetries = 0
        _ = self.stats.takeWindow()
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: .milliseconds(100))
            } catch {
                return
            }
            self.emit(&monitor)
            let now = self.clock.now
            guard now - lastTick >= .seconds(1) else { continue }
            let (whole, attoseconds) = (now - lastTick).components
            lastTick = now
            let counters = self.mesh.nodes.map(\.counters)
            let retries = self.mesh.node("frontend")?.counters["outbound.retries.granted"] ?? 0
            defer { lastRetries = retries }
            self.console.show(
                DemoFrame(
                    elapsed: self.elapsed, window: self.stats.takeWindow(),
                    windowSeconds: Double(whole) + Double(attoseconds) / 1e18, retries: retries - lastRetries,
                    syncedProxies: self.mesh.syncedProxies, proxies: self.mesh.nodes.count,
                    mtlsConnections: counters.map { $0["inbound.tls.connections"] ?? 0 }.reduce(0, +),
                    tlsRefused: counters.map { $0["inbound.tls.refused"] ?? 0 }.reduce(0, +),
                    deniedTotal: self.stats.totals.values.map(\.denied).reduce(0, +)))
        }
    }

    private func emit(_ monitor: inout DemoMonitor) {
        let events = monitor.events(
            proxies: self.mesh.hub.proxies, statuses: self.mesh.state.result.statuses,
            problems: self.mesh.source.problems)
        for event in events { self.event(event) }
    }

    private var elapsed: Double {
        let (seconds, attoseconds) = (self.clock.now - self.started).components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    private func event(_ text: String) {
        self.console.event(text, elapsed: self.elapsed)
    }

    /// Polls `value` every 10 ms for up to 60 s.
    private static func poll<T>(_ value: () -> T?) async -> T? {
        for _ in 0..<6000 {
            if let found = value() { return found }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return nil
    }
}
