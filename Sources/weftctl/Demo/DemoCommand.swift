import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle

/// `weftctl demo`: the whole mesh on this machine, in this process, with traffic.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run a whole mesh on 127.0.0.1 with traffic: controller, six proxies, the demo shop's apps.",
        discussion: """
            In this one process, on 127.0.0.1 with ports the system picks: the controller on the folder of \
            manifests (the mesh CA, bootstrap tokens, the push stream with TLS), and six pods, each an app behind \
            its own weft-proxy: a load generator, frontend, catalog v1 and v2, payments and a flaky payments. The \
            proxies get SVIDs from the CA and their config from the push stream, and talk STRICT mTLS to each \
            other. The load generator calls the frontend, which calls catalog (split 90/10 between v1 and v2) and \
            payments (retried on 5xx); every 20th request goes to /admin/orders, which an AuthorizationPolicy \
            denies. The terminal shows each second's requests per service; edit a file of the folder (the catalog \
            split, say) and the demo shows the new config versions, the proxies' ACKs and the resources' \
            conditions, and the traffic moves. Ctrl-C (or SIGTERM) stops everything and prints a summary.
            """
    )

    @Option(help: "The folder of manifests (the namespace, Services and Weft resources); re-read when a file changes.")
    var manifests: String = "manifests/demo"

    @Option(help: "Stop after this many seconds of traffic (default: run until Ctrl-C).")
    var duration: Double?

    @Option(help: "Stop after the load generator sent this many requests (default: no limit).")
    var requests: Int?

    @Option(help: "Requests per second the load generator sends to the frontend.")
    var rate: Double = 50

    @Flag(help: "Plain lines, one a second, instead of the table (also when standard output is not a terminal).")
    var noTui = false

    @Flag(help: "Write only a JSON summary to standard output at the end (the lines go to standard error).")
    var json = false

    @Option(help: "The controller's push stream and CA port (0: the system picks one).")
    var pushPort: Int = 0

    @Option(help: "The controller's HTTP port, /status and /proxies (0: the system picks one).")
    var metricsPort: Int = 0

    @Option(help: "Log level of the controller's and proxies' logs (standard error).")
    var logLevel: String = "error"

    func validate() throws {
        guard self.rate > 0, self.rate <= 10_000 else { throw ValidationError("--rate must be in 0<..10000") }
        if let requests = self.requests, requests <= 0 { throw ValidationError("--requests must be positive") }
        if let duration = self.duration, !(duration > 0 && duration <= 1e9) {
            throw ValidationError("--duration must be a positive number of seconds (at most 1e9)")
        }
        guard (0...65535).contains(self.pushPort), (0...65535).contains(self.metricsPort) else {
            throw ValidationError("ports are 0 (any) to 65535")
        }
        guard Logger.Level(rawValue: self.logLevel) != nil else {
            throw ValidationError("--log-level: one of trace, debug, info, notice, warning, error, critical")
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: self.manifests, isDirectory: &isDirectory) else {
            throw ValidationError(
                "no folder \(self.manifests): run from the repository's root, or give --manifests DIR")
        }
    }

    func run() async throws {
        let level = Logger.Level(rawValue: self.logLevel) ?? .error
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "weft.demo")
        let stats = DemoStats()
        let mesh = try await DemoMesh.make(
            manifests: self.manifests, pushPort: self.pushPort, httpPort: self.metricsPort, stats: stats,
            logger: logger)
        defer { try? FileManager.default.removeItem(at: mesh.tokens) }

        let mode: DemoConsole.Mode =
            self.json ? .linesToStandardError : (self.noTui || isatty(STDOUT_FILENO) == 0 ? .lines : .table)
        let console = DemoConsole(
            mode: mode,
            header: "Weft demo on 127.0.0.1: \(mesh.nodes.count) proxies, manifests in \(self.manifests) "
                + "(edit them live) · Ctrl-C stops")
        let load = DemoLoad(
            rate: self.rate, requests: self.requests, duration: self.duration.map { .milliseconds(Int64($0 * 1000)) })
        let driver = DemoDriver(mesh: mesh, load: load, stats: stats, console: console, logger: logger)
        var configuration = ServiceGroupConfiguration(
            services: mesh.services.map { .init(service: $0) } + [
                .init(
                    service: driver, successTerminationBehavior: .gracefullyShutdownGroup,
                    failureTerminationBehavior: .gracefullyShutdownGroup)
            ],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        // Shutdown drains the listeners (1 s each at most); whatever is left after 10 s is cancelled.
        configuration.maximumGracefulShutdownDuration = .seconds(10)
        configuration.maximumCancellationDuration = .seconds(5)
        do {
            try await ServiceGroup(configuration: configuration).run()
        } catch {
            FileHandle.standardError.write(Data("weftctl demo: \(error)\n".utf8))
            throw ExitCode.failure
        }
        let outcome = driver.outcome ?? DemoDriver.Outcome(seconds: 0, requests: 0)
        let summary = DemoSummary(mesh: mesh, totals: stats.totals, outcome: outcome)
        if self.json {
            FileHandle.standardOutput.write(Data(summary.json.utf8))
        } else {
            FileHandle.standardOutput.write(Data(("\n" + summary.text).utf8))
        }
    }
}
