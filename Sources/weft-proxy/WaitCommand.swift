import ArgumentParser
import Synchronization
import WeftProxy

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `weft-proxy wait`: returns once the proxy in this pod is ready. The classic sidecar's postStart hook: the
/// kubelet starts a pod's containers in order and waits for each postStart hook, so with the proxy first the
/// app's containers start only once the proxy has its config (what the native sidecar's startup probe does).
struct WaitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wait",
        abstract: "Waits until the proxy's status port answers /healthz/ready with 200 (a postStart hook).",
        discussion: """
            Exits 0 once GET http://127.0.0.1:<status-port>/healthz/ready answers 200, or 1 after --timeout \
            seconds with the last reason. The injector adds it to the proxy container in classic-sidecar mode.
            """
    )

    @Option(help: "The proxy's status port.")
    var statusPort: Int = 15020

    @Option(help: "Seconds to wait before giving up.")
    var timeout: Int = 120

    @Option(help: "Milliseconds between attempts.")
    var intervalMs: Int = 200

    func validate() throws {
        guard (1...65_535).contains(self.statusPort) else { throw ValidationError("--status-port must be a port") }
        guard self.timeout > 0 else { throw ValidationError("--timeout must be positive") }
        guard self.intervalMs > 0 else { throw ValidationError("--interval-ms must be positive") }
    }

    func run() async throws {
        let last = LastReason()
        let ready = await ProxyReadiness.wait(
            statusPort: self.statusPort, timeout: .seconds(self.timeout), interval: .milliseconds(self.intervalMs)
        ) { reason in last.set(reason) }
        guard ready else {
            let message =
                "weft-proxy wait: not ready after \(self.timeout) s on 127.0.0.1:\(self.statusPort): \(last.get())\n"
            _ = writeAll(STDERR_FILENO, Array(message.utf8))
            throw ExitCode(1)
        }
        print("weft-proxy is ready")
    }
}

private final class LastReason: Sendable {
    private let reason = Mutex("no attempt")
    func set(_ value: String) { self.reason.withLock { $0 = value } }
    func get() -> String { self.reason.withLock { $0 } }
}
