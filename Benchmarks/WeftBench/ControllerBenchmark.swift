import Foundation
import KubeClient
import KubeModel
import Logging
import WeftAPI
import WeftController
import WeftTesting

/// The controller benchmark: the synthetic cluster seeded into a fake API server (over HTTP on loopback),
/// a controller started against it; time to the first complete status, time from one change to its new
/// status, and memory.
enum ControllerBenchmark {
    static func run(cluster: SyntheticCluster) async throws {
        let clock = ContinuousClock()
        let snapshot = cluster.snapshot()
        let server = try await FakeAPIServer.start(historyWindow: 50_000)
        for object in snapshot.namespaces { try server.seed(object) }
        for object in snapshot.pods { try server.seed(object) }
        for object in snapshot.services { try server.seed(object) }
        for object in snapshot.endpointSlices { try server.seed(object) }
        for object in snapshot.virtualServices { try server.seed(object) }
        for object in snapshot.destinationPolicies { try server.seed(object) }
        let baseline = residentMiB()
        let url = URL(string: server.baseURL) ?? URL(fileURLWithPath: "/")
        let client = try KubeClient(configuration: KubeConfiguration(server: url), logger: Logger(label: "bench"))
        let state = ControllerState()
        var logger = Logger(label: "bench")
        logger.logLevel = ProcessInfo.processInfo.environment["WEFT_BENCH_LOG"] == "1" ? .info : .warning
        let controller = KubernetesController(
            api: client, state: state,
            options: .init(leaderElection: nil), logger: logger)
        let expected = snapshot.virtualServices.count + snapshot.destinationPolicies.count
        let start = clock.now
        try await withThrowingTaskGroup(of: Void.self) { group throws in
            group.addTask { try await controller.run() }
            defer { group.cancelAll() }
            // Time to the first complete status: every VirtualService and DestinationPolicy has conditions.
            while statused(server) < expected {
                try await Task.sleep(for: .milliseconds(250))
                if clock.now - start > .seconds(300) { throw BenchmarkError("no complete status after 300 s") }
            }
            let firstStatus = clock.now - start
            let afterSync = residentMiB()

            // One change: a VirtualService becomes invalid; time until its status says so. Then fix it.
            var latencies: [Duration] = []
            for round in 0..<5 {
                let name = "svc-\(round * 7)"
                let namespace = cluster.namespace(ofService: round * 7)
                for (timeout, valid, timed) in [("7x", false, true), ("2s", true, false)] {
                    var vs = try await client.get(weft.v1alpha1.VirtualService.self, namespace: namespace, name: name)
                    let last = (vs.spec.http?.count ?? 1) - 1
                    vs.spec.http?[last].timeout = timeout
                    let changeStart = clock.now
                    let updated = try await client.update(vs)
                    while true {
                        let accepted = server.get(weft.v1alpha1.VirtualService.self, namespace: namespace, name: name)?
                            .status?.conditions?[type: "Accepted"]
                        if accepted?.status == (valid ? .true : .false),
                            accepted?.observedGeneration == updated.metadata.generation
                        {
                            break
                        }
                        try await Task.sleep(for: .milliseconds(2))
                        if clock.now - changeStart > .seconds(30) {
                            throw BenchmarkError("change not reflected after 30 s")
                        }
                    }
                    if timed { latencies.append(clock.now - changeStart) }
                }
            }
            latencies.sort()
            print(
                "weft controller benchmark: \(cluster.pods) pods, \(cluster.services) services, \(cluster.virtualServices) VirtualServices, \(cluster.destinationPolicies) DestinationPolicies through a fake API server on loopback"
            )
            print(String(format: "time to first complete status:  %.2f s   (target < 5 s)", seconds(firstStatus)))
            print(
                String(
                    format: "one change to its new status:   %.0f ms  (median of %d; target < 200 ms)",
                    seconds(latencies[latencies.count / 2]) * 1000, latencies.count))
            print(
                String(
                    format:
                        "controller memory after sync:   %.0f MiB (RSS growth over the seeded fake server; target < 300 MiB)",
                    afterSync - baseline))
            print(String(format: "process peak RSS (incl. fake):  %.0f MiB", peakMiB()))
        }
        try await client.shutdown()
        try await server.shutdown()
    }

    static func statused(_ server: FakeAPIServer) -> Int {
        server.list(weft.v1alpha1.VirtualService.self).filter { $0.status?.conditions?.isEmpty == false }.count
            + server.list(weft.v1alpha1.DestinationPolicy.self).filter { $0.status?.conditions?.isEmpty == false }.count
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    static func residentMiB() -> Double { procStatus("VmRSS:") }
    static func peakMiB() -> Double { procStatus("VmHWM:") }

    static func procStatus(_ field: String) -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix(field) {
            return (line.split(separator: " ").dropFirst().first.flatMap { Double($0) } ?? 0) / 1024
        }
        return 0
    }
}

struct BenchmarkError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
