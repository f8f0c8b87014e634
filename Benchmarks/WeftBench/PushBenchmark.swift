import Foundation
import Logging
import ServiceLifecycle
import WeftCompiler
import WeftController
import WeftProxy
import WeftTesting

/// Push fan-out: a controller's hub and push server, and `pods` proxies' push clients in a second process (so
/// the controller's memory is its own), all on 127.0.0.1. After every proxy runs the first config, one
/// VirtualService changes in a way that changes every proxy's config; measured: the time until every proxy
/// acknowledged the new version, and the controller's memory with every stream open.
enum PushBenchmark {
    static let logger: Logger = {
        var logger = Logger(label: "weft.bench.push")
        logger.logLevel = .warning
        return logger
    }()

    static func cluster(pods: Int) -> SyntheticCluster {
        SyntheticCluster(
            namespaces: 10, services: max(1, pods / 5), pods: pods, virtualServices: max(1, pods / 10),
            destinationPolicies: max(1, pods / 20))
    }

    /// The controller side; starts the clients as a child process.
    static func run(pods: Int) async throws {
        let cluster = Self.cluster(pods: pods)
        var session = WeftCompiler().session()
        var snapshot = cluster.snapshot()
        var result = session.compile(snapshot)
        let configBytes = result.proxies.values.reduce(0) { $0 + ((try? $1.encoded().count) ?? 0) }
        let hub = PushHub(logger: Self.logger)
        let server = ConfigPushServer(host: "127.0.0.1", port: 0, hub: hub, logger: Self.logger)
        let clock = ContinuousClock()
        let before = ControllerBenchmark.residentMiB()
        await hub.process(&result, snapshot: snapshot)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }
            var port: Int?
            while port == nil {
                try await Task.sleep(for: .milliseconds(10))
                port = server.listeningPort
            }
            let clients = Process()
            clients.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
            clients.arguments = ["--push-clients", "\(port ?? 0)", "--pods", "\(pods)"]
            try clients.run()
            defer { if clients.isRunning { clients.terminate() } }

            let start = clock.now
            try await Self.waitUntil(hub, synced: result.proxies.count, timeout: .seconds(600))
            let connected = clock.now - start
            let withStreams = ControllerBenchmark.residentMiB()

            // WEFT_BENCH_PAUSE=<seconds>: time to attach a profiler before the change.
            if let pause = ProcessInfo.processInfo.environment["WEFT_BENCH_PAUSE"].flatMap(Int.init) {
                FileHandle.standardError.write(Data("synced; the change follows in \(pause) s\n".utf8))
                try await Task.sleep(for: .seconds(pause))
            }
            // One VirtualService's timeout changes: every proxy's outbound list holds it.
            snapshot.virtualServices[0] = cluster.virtualService(0, timeout: "9s")
            let changeStart = clock.now
            var changed = session.compile(snapshot)
            let compiled = clock.now - changeStart
            await hub.process(&changed, snapshot: snapshot)
            let sent = clock.now - changeStart
            let versions = Set(changed.proxies.values.map(\.version))
            try await Self.waitUntil(hub, synced: changed.proxies.count, timeout: .seconds(600))
            let acknowledged = clock.now - changeStart
            let peak = ControllerBenchmark.peakMiB()
            let touched = changed.proxies.filter { result.proxies[$0.key]?.version != $0.value.version }.count

            print("push fan-out, \(changed.proxies.count) proxy streams on 127.0.0.1 (clients in another process)")
            print(
                String(
                    format: "  configs: %.1f KiB each on average, %.1f MiB in all; %d distinct versions",
                    Double(configBytes) / Double(max(1, result.proxies.count)) / 1024,
                    Double(configBytes) / 1_048_576, versions.count))
            print(String(format: "  every stream connected and synced: %.0f ms", milliseconds(connected)))
            print(
                String(
                    format: "  one change touching %d proxies: compiled %.0f ms, pushed %.0f ms, all ACKed %.0f ms",
                    touched, milliseconds(compiled), milliseconds(sent), milliseconds(acknowledged)))
            print(
                String(
                    format: "  controller memory: %.0f MiB before the streams, %.0f MiB with them, peak %.0f MiB",
                    before, withStreams, peak))
            clients.terminate()
            clients.waitUntilExit()
            group.cancelAll()
        }
    }

    static func waitUntil(_ hub: PushHub, synced count: Int, timeout: Duration) async throws {
        let clock = ContinuousClock()
        let end = clock.now + timeout
        while hub.syncedCount < count {
            guard clock.now < end else { throw BenchmarkError("not all proxies synced in \(timeout)") }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    /// The client side: one push client per proxy of the same synthetic cluster.
    static func clients(port: Int, pods: Int) async throws {
        let ids = WeftCompiler().compile(Self.cluster(pods: pods).snapshot()).proxies.keys.sorted()
        var quiet = Logger(label: "weft.bench.clients")
        quiet.logLevel = .error
        let services: [any Service] = ids.map { id in
            PushClient(
                configuration: .init(host: "127.0.0.1", port: port, proxyID: id),
                installer: ConfigInstaller(store: ProxyStateStore(), logger: quiet), logger: quiet)
        }
        let group = ServiceGroup(
            configuration: .init(services: services, gracefulShutdownSignals: [.sigterm], logger: quiet))
        try await group.run()
    }
}
