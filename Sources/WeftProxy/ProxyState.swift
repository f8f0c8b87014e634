import Foundation
import ProxyConfig
import Synchronization

/// One loaded config with everything precompiled from it. Immutable: a new config makes a new `ProxyState`,
/// swapped into the `ProxyStateStore` whole, so a request sees one consistent config from head to end.
public final class ProxyState: Sendable {
    public let config: ProxyConfig
    public let routeTable: RouteTable
    /// The config as the file gave it, for `/config_dump`.
    public let json: String
    /// Clusters by name, each with its ready endpoints and a round-robin cursor.
    let clusters: [String: ClusterState]

    /// Compiles `config`; throws `ProxyConfigError` when a route matcher does not compile.
    public init(config: ProxyConfig, json: String) throws(ProxyConfigError) {
        self.routeTable = try RouteTable(config)
        self.config = config
        self.json = json
        var clusters: [String: ClusterState] = [:]
        for cluster in config.clusters {
            clusters[cluster.name] = ClusterState(cluster)
        }
        self.clusters = clusters
    }

    /// Decodes and compiles a config file's bytes.
    public static func load(_ data: Data) throws -> ProxyState {
        let config = try ProxyConfig.decode(data)
        return try ProxyState(config: config, json: String(decoding: data, as: UTF8.self))
    }
}

/// A cluster's endpoints as the proxy balances over them (round robin among ready endpoints; the not-ready
/// ones only when none is ready).
final class ClusterState: Sendable {
    let cluster: Cluster
    private let candidates: [Endpoint]
    private let cursor = Atomic<Int>(0)

    init(_ cluster: Cluster) {
        self.cluster = cluster
        let ready = cluster.endpoints.filter { $0.ready }
        self.candidates = ready.isEmpty ? cluster.endpoints : ready
    }

    /// The next endpoint in round-robin order; `nil` when the cluster has none.
    func nextEndpoint() -> Endpoint? {
        guard !self.candidates.isEmpty else {
            return nil
        }
        let ticket = self.cursor.add(1, ordering: .relaxed).oldValue
        return self.candidates[Int(UInt(bitPattern: ticket) % UInt(self.candidates.count))]
    }
}

/// The current `ProxyState`, read once per request head and replaced whole on reload.
public final class ProxyStateStore: Sendable {
    private let state = Mutex<ProxyState?>(nil)

    public init(_ initial: ProxyState? = nil) {
        self.state.withLock { $0 = initial }
    }

    /// The config being served, or `nil` before the first one loads.
    public var current: ProxyState? { self.state.withLock { $0 } }

    public func replace(with newState: ProxyState) {
        self.state.withLock { $0 = newState }
    }
}
