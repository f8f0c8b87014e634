import Foundation
import KubeModel
import Synchronization
import WeftCompiler
import WeftController
import WeftManifests

/// One pod of the demo: its app (none for the load generator) behind its own proxy.
struct DemoWorkload: Sendable, Hashable {
    enum Role: Sendable, Hashable {
        /// Sends the traffic, through its proxy, to the frontend.
        case loadGenerator
        /// Calls catalog and payments, through its proxy, for each request.
        case frontend
        /// Answers `catalog <version>`.
        case catalog(version: String)
        /// Answers `payments ok`; a flaky one fails one request in three with 503.
        case payments(flaky: Bool)
    }

    var pod: String
    var app: String
    var version: String?
    var role: Role

    static let namespace = "demo"

    /// The demo's pods, in the order their proxies are shown.
    static let all: [DemoWorkload] = [
        DemoWorkload(pod: "loadgen", app: "loadgen", role: .loadGenerator),
        DemoWorkload(pod: "frontend", app: "frontend", role: .frontend),
        DemoWorkload(pod: "catalog-v1", app: "catalog", version: "v1", role: .catalog(version: "v1")),
        DemoWorkload(pod: "catalog-v2", app: "catalog", version: "v2", role: .catalog(version: "v2")),
        DemoWorkload(pod: "payments", app: "payments", role: .payments(flaky: false)),
        DemoWorkload(pod: "payments-flaky", app: "payments", role: .payments(flaky: true)),
    ]

    /// `demo/<pod>`: the proxy's ID.
    var proxyID: String { "\(Self.namespace)/\(self.pod)" }
    /// Each app runs as the service account named after it.
    var serviceAccount: String { self.app }
    /// Whether the pod serves requests (the load generator only sends them).
    var serves: Bool { self.role != .loadGenerator }
}

/// Where the demo's processes listen on 127.0.0.1, by pod: the app's port and its proxy's inbound port.
struct DemoPorts: Sendable, Hashable {
    var app: [String: Int]
    var inbound: [String: Int]
}

extension DemoWorkload {
    /// The Pods and EndpointSlices a cluster would have for the demo's processes, as manifests: each pod's
    /// container port `http` is its app's port (the inbound port in its proxy's config, and where the proxy
    /// forwards), and each EndpointSlice points at the pod's proxy's inbound listener. That port stands in for
    /// transparent capture, which would redirect `podIP:port` to the proxy: callers' proxies reach the pod's proxy,
    /// over mTLS, never the app directly.
    static func manifests(_ workloads: [DemoWorkload], ports: DemoPorts) -> String {
        var documents: [String] = []
        for workload in workloads {
            var labels = "app: \(workload.app)"
            if let version = workload.version { labels += ", version: \(version)" }
            let containerPorts =
                ports.app[workload.pod].map { "ports: [{name: http, containerPort: \($0)}]" } ?? "ports: []"
            documents.append(
                """
                apiVersion: v1
                kind: Pod
                metadata: {name: \(workload.pod), namespace: \(Self.namespace), labels: {\(labels)}}
                spec:
                  serviceAccountName: \(workload.serviceAccount)
                  containers: [{name: app, image: weftctl-demo, \(containerPorts)}]
                status:
                  phase: Running
                  podIP: 127.0.0.1
                  podIPs: [{ip: 127.0.0.1}]
                  conditions: [{type: Ready, status: "True"}]
                """)
            guard workload.serves, let inbound = ports.inbound[workload.pod] else { continue }
            documents.append(
                """
                apiVersion: discovery.k8s.io/v1
                kind: EndpointSlice
                metadata:
                  name: \(workload.pod)
                  namespace: \(Self.namespace)
                  labels: {kubernetes.io/service-name: \(workload.app)}
                addressType: IPv4
                ports: [{name: http, port: \(inbound), protocol: TCP, appProtocol: http}]
                endpoints:
                - addresses: [127.0.0.1]
                  conditions: {ready: true, serving: true, terminating: false}
                  targetRef: {kind: Pod, namespace: \(Self.namespace), name: \(workload.pod)}
                """)
        }
        return documents.joined(separator: "\n---\n") + "\n"
    }
}

/// The controller's view of the demo: the folder of manifests (re-read when a file changes), plus the Pods and
/// EndpointSlices of the demo's processes once their ports are known.
final class DemoSource: SnapshotSource {
    private let folder: ManifestSource
    private let workloads: [DemoWorkload]
    private let ports: @Sendable () -> DemoPorts?
    private let generated = Mutex<WeftSnapshot?>(nil)

    /// - Parameter ports: the bound ports, or nil while some listener is not bound yet.
    init(folder: ManifestSource, workloads: [DemoWorkload], ports: @escaping @Sendable () -> DemoPorts?) {
        self.folder = folder
        self.workloads = workloads
        self.ports = ports
    }

    /// Problems found reading the folder.
    var problems: [ManifestProblem] { self.folder.problems }

    func snapshot() async -> WeftSnapshot {
        var snapshot = await self.folder.snapshot()
        if let generated = self.generated.withLock({ $0 }) {
            snapshot.pods += generated.pods
            snapshot.endpointSlices += generated.endpointSlices
        }
        return snapshot
    }

    var hasSynced: Bool {
        get async {
            guard self.generated.withLock({ $0 != nil }) else { return false }
            return await self.folder.hasSynced
        }
    }

    func run(changed: @escaping @Sendable () -> Void) async throws {
        // The listeners bind as their services start: wait for all of them (60 s at most).
        var ports: DemoPorts?
        for _ in 0..<6000 {
            ports = self.ports()
            if ports != nil { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        guard let ports else { throw DemoError("the demo's apps and proxies did not start listening within 60 s") }
        let loaded = ManifestLoader().load(
            text: DemoWorkload.manifests(self.workloads, ports: ports), file: "<weftctl demo workloads>")
        if let problem = loaded.problems.first {
            throw DemoError("the demo's generated workloads do not load: \(problem)")
        }
        self.generated.withLock { $0 = loaded.snapshot }
        try await self.folder.run(changed: changed)
    }
}

/// Why the demo cannot go on.
struct DemoError: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) {
        self.description = description
    }
}
