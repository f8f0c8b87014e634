import Foundation
import Logging
import ServiceLifecycle
import WeftController
import WeftHTTP
import WeftIdentity
import WeftProxy

/// One pod of the demo in this process: its app and its proxy (outbound and inbound listeners, the certificate
/// its identity client installs, the config its push client installs).
final class DemoNode: Sendable {
    let workload: DemoWorkload
    let store = ProxyStateStore()
    let metrics = ProxyMetrics()
    let certificates = InMemoryCertificateSource()
    let outbound: ProxyListener
    let inbound: ProxyListener?
    let app: EndpointServer?

    init(_ workload: DemoWorkload, stats: DemoStats, logger: Logger) {
        self.workload = workload
        let meshTLS = MeshTLS(source: self.certificates)
        let outbound = ProxyListener(
            direction: .outbound, port: 0, store: self.store, metrics: self.metrics, drainTimeout: .seconds(1),
            meshTLS: meshTLS, logger: logger)
        self.outbound = outbound
        if workload.serves {
            self.inbound = ProxyListener(
                direction: .inbound, port: 0, store: self.store, metrics: self.metrics, drainTimeout: .seconds(1),
                meshTLS: meshTLS, logger: logger)
            self.app = EndpointServer(
                host: "127.0.0.1", port: 0, logger: logger,
                respond: DemoApps.responder(for: workload, stats: stats) { outbound.listeningPort })
        } else {
            self.inbound = nil
            self.app = nil
        }
    }

    /// The listeners and the app.
    var services: [any Service] {
        var services: [any Service] = [self.outbound]
        if let inbound = self.inbound { services.append(inbound) }
        if let app = self.app { services.append(app) }
        return services
    }

    /// The proxy's identity client (Sign, then renewals) and push client, against the controller on `port`.
    func clients(pushPort port: Int, ca: MeshCA, tokenPath: String, logger: Logger) throws -> [any Service] {
        let identity = try SpiffeID(
            trustDomain: ca.trustDomain, namespace: DemoWorkload.namespace,
            serviceAccount: self.workload.serviceAccount)
        let controllerIdentity = try ca.controllerIdentity
        let identityClient = IdentityClient(
            configuration: .init(
                host: "127.0.0.1", port: port, identity: identity, controllerIdentity: controllerIdentity,
                tokenPath: tokenPath, controllerCAPEM: try ca.trustBundlePEM, initialBackoff: .milliseconds(50),
                maximumBackoff: .seconds(2)),
            certificates: self.certificates, logger: logger)
        let push = PushClient(
            configuration: .init(
                host: "127.0.0.1", port: port, proxyID: self.workload.proxyID, initialBackoff: .milliseconds(50),
                maximumBackoff: .seconds(2),
                tls: .init(certificates: self.certificates, controllerIdentity: controllerIdentity)),
            installer: ConfigInstaller(store: self.store, metrics: self.metrics, logger: logger), logger: logger)
        return [identityClient, push]
    }

    /// The proxy's `/stats` counters by name (`inbound.tls.connections`, `outbound.retries.granted`, ...).
    var counters: [String: Int] {
        var counters: [String: Int] = [:]
        for line in self.metrics.renderStats().split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, let value = Int(parts[1].trimmingCharacters(in: .whitespaces)) else { continue }
            counters[String(parts[0])] = value
        }
        return counters
    }

    /// Requests the inbound listener answered (any status).
    var inboundRequests: Int {
        self.counters.filter { key, _ in
            let parts = key.split(separator: ".")
            return parts.count == 3 && parts[0] == "inbound" && parts[1].hasSuffix("xx")
        }.values.reduce(0, +)
    }
}

/// The whole demo mesh in this process: the controller (CA, bootstrap tokens, the folder plus the generated
/// workloads, reconciler, push hub, the push port with TLS and Sign, the HTTP port) and one `DemoNode` per pod.
struct DemoMesh: Sendable {
    let nodes: [DemoNode]
    let ca: MeshCA
    let hub: PushHub
    let state: ControllerState
    let source: DemoSource
    let reconciler: Reconciler
    let push: ConfigPushServer
    let http: ControllerHTTPServer
    /// A private folder with one bootstrap token file per service account (removed when the demo ends).
    let tokens: URL

    static func make(
        manifests: String, pushPort: Int, httpPort: Int, stats: DemoStats, logger: Logger
    ) async throws -> DemoMesh {
        let nodes = DemoWorkload.all.map { DemoNode($0, stats: stats, logger: logger) }
        let ca = try await MeshCA.load(
            from: .memory, rootNamespace: "weft-system", trustDomain: try TrustDomain("cluster.local"),
            logger: logger)
        let tokens = FileManager.default.temporaryDirectory.appendingPathComponent("weftctl-demo-\(UUID().uuidString)")
        try FileManager.default.createDirectory(
            at: tokens, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        var accounts: [String: WorkloadAccount] = [:]
        for account in Set(nodes.map(\.workload.serviceAccount)) {
            let token = UUID().uuidString
            accounts[token] = WorkloadAccount(namespace: DemoWorkload.namespace, serviceAccount: account)
            let file = tokens.appendingPathComponent(account)
            try Data((token + "\n").utf8).write(to: file)
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: file.path)
        }
        let hub = PushHub(logger: logger)
        let state = ControllerState()
        let source = DemoSource(
            folder: ManifestSource(path: manifests, pollInterval: .milliseconds(100), logger: logger),
            workloads: nodes.map(\.workload)
        ) {
            var ports = DemoPorts(app: [:], inbound: [:])
            for node in nodes {
                if let app = node.app {
                    guard let port = app.listeningPort else { return nil }
                    ports.app[node.workload.pod] = port
                }
                if let inbound = node.inbound {
                    guard let port = inbound.listeningPort else { return nil }
                    ports.inbound[node.workload.pod] = port
                }
            }
            return ports
        }
        let reconciler = Reconciler(
            source: source, state: state, stages: [hub], logger: logger, quiet: .milliseconds(20))
        hub.onAnswer { reconciler.signal() }
        let push = ConfigPushServer(
            host: "127.0.0.1", port: pushPort, hub: hub, tls: try PushServerTLS(ca: ca),
            identity: IdentityService(
                ca: ca, authenticator: BootstrapTokenAuthenticator(tokens: accounts), logger: logger),
            logger: logger)
        let http = ControllerHTTPServer(
            host: "127.0.0.1", port: httpPort, state: state,
            ready: { await source.hasSynced && state.hasCompiled }, hub: hub, logger: logger)
        return DemoMesh(
            nodes: nodes, ca: ca, hub: hub, state: state, source: source, reconciler: reconciler, push: push,
            http: http, tokens: tokens)
    }

    /// The controller first (it stops last), then the apps and proxies.
    var services: [any Service] {
        [self.reconciler, self.push, self.http] + self.nodes.flatMap(\.services)
    }

    /// The identity and push clients of every proxy, against the push port.
    func clients(pushPort: Int, logger: Logger) throws -> [any Service] {
        try self.nodes.flatMap { node in
            try node.clients(
                pushPort: pushPort, ca: self.ca,
                tokenPath: self.tokens.appendingPathComponent(node.workload.serviceAccount).path, logger: logger)
        }
    }

    func node(_ pod: String) -> DemoNode? {
        self.nodes.first { $0.workload.pod == pod }
    }

    /// Proxies of the demo that run the newest config the controller has for them.
    var syncedProxies: Int {
        let ids = Set(self.nodes.map(\.workload.proxyID))
        return self.hub.proxies.filter { ids.contains($0.id) && $0.status == .synced }.count
    }
}
