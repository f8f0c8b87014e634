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
    /// Clusters by name. Their mutable balancing state lives per event loop (`ClusterRuntime`).
    let clusters: [String: Cluster]

    /// Compiles `config`; throws `ProxyConfigError` when a route matcher does not compile, or when a header value
    /// it writes could split or reframe a message (`ConfigHeaderCheck`).
    public init(config: ProxyConfig, json: String) throws(ProxyConfigError) {
        try ConfigHeaderCheck.check(config)
        self.routeTable = try RouteTable(config)
        self.config = config
        self.json = json
        var clusters: [String: Cluster] = [:]
        for cluster in config.clusters {
            clusters[cluster.name] = cluster
        }
        self.clusters = clusters
    }

    /// Decodes and compiles a config file's bytes.
    public static func load(_ data: Data) throws -> ProxyState {
        let config = try ProxyConfig.decode(data)
        return try ProxyState(config: config, json: String(decoding: data, as: UTF8.self))
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
