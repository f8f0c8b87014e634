import ProxyConfig
import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One loaded config with everything precompiled from it. Immutable: a new config makes a new `ProxyState`,
/// swapped into the `ProxyStateStore` whole, so a request sees one consistent config from head to end.
public final class ProxyState: Sendable {
    public let config: ProxyConfig
    public let routeTable: RouteTable
    /// The config as the file or the push stream gave it, if it came whole; nil for one made from a delta.
    private let source: String?
    /// Clusters by name. Their mutable balancing state lives per event loop (`ClusterRuntime`).
    let clusters: [String: Cluster]

    /// Compiles `config`; throws `ProxyConfigError` when a route matcher does not compile, or when a header value
    /// it writes could split or reframe a message (`ConfigHeaderCheck`).
    ///
    /// With `previous` (the state serving, when `config` came as a delta of its config), route matchers of
    /// outbound entries that did not change are reused, not compiled again.
    public init(config: ProxyConfig, json: String?, previous: ProxyState? = nil) throws(ProxyConfigError) {
        try ConfigHeaderCheck.check(config, previous: previous?.config)
        self.routeTable = try RouteTable(config, reusing: previous?.routeTable)
        self.config = config
        self.source = json
        self.clusters = Self.clustersByName(config.clusters, previous: previous)
    }

    /// `clusters` by name; from `previous`'s table, updated, when the names are the same in the same order (a delta
    /// that changed some clusters, say endpoints).
    private static func clustersByName(_ clusters: [Cluster], previous: ProxyState?) -> [String: Cluster] {
        if let previous, previous.config.clusters.count == clusters.count,
            zip(previous.config.clusters, clusters).allSatisfy({ $0.name == $1.name })
        {
            var table = previous.clusters
            for (old, new) in zip(previous.config.clusters, clusters) where old != new {
                table[new.name] = new
            }
            return table
        }
        var table: [String: Cluster] = [:]
        table.reserveCapacity(clusters.count)
        for cluster in clusters {
            table[cluster.name] = cluster
        }
        return table
    }

    /// The config's JSON for `/config_dump`: as it came, or encoded now (a config made from a delta).
    public var json: String {
        if let source = self.source { return source }
        return String(decoding: (try? self.config.encoded()) ?? Data("{}".utf8), as: UTF8.self)
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
