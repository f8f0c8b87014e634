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

/// The current `ProxyState`, read once per request head and replaced whole on reload; and whether the proxy is
/// ready to serve: a config loaded and every listener made with this store bound.
public final class ProxyStateStore: Sendable {
    private let state = Mutex<ProxyState?>(nil)
    /// Listeners made with this store, and those of them bound now.
    private let listeners = Mutex<(made: Int, bound: Int)>((0, 0))

    public init(_ initial: ProxyState? = nil) {
        self.state.withLock { $0 = initial }
    }

    /// The config being served, or `nil` before the first one loads.
    public var current: ProxyState? { self.state.withLock { $0 } }

    public func replace(with newState: ProxyState) {
        self.state.withLock { $0 = newState }
    }

    /// Why the proxy is not ready (`/ready`, `/healthz/ready`), or nil when it is: the config it serves is loaded
    /// and its listeners are bound. An admin port that answers before the outbound and inbound ports are bound
    /// (or after one of them failed to bind) must not call the proxy ready.
    public var notReadyReason: String? {
        guard self.current != nil else {
            return "no config loaded"
        }
        let (made, bound) = self.listeners.withLock { $0 }
        return bound < made ? "\(bound) of \(made) listeners bound" : nil
    }

    func listenerMade() {
        self.listeners.withLock { $0.made += 1 }
    }

    func listener(bound: Bool) {
        self.listeners.withLock { $0.bound += bound ? 1 : -1 }
    }
}
