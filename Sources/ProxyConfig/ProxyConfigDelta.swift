#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The difference between two configs of one proxy, entry by entry: what the push stream sends instead of the
/// whole config when most of it did not change (a change to one route is one outbound entry, not the tens of
/// thousands of endpoints of a large mesh).
///
/// Outbound entries are keyed by host and port, clusters by name; both lists are kept in the compiler's
/// canonical order (outbound by host then port, clusters by name), which is what lets a proxy rebuild the exact
/// new config from its old one. `between` makes no delta for lists that are not in that order, or when most
/// entries changed: the full config is sent instead.
public struct ProxyConfigDelta: Codable, Hashable, Sendable {
    /// The version of the config the delta produces.
    public var version: String
    /// The version it applies to.
    public var base: String
    /// The new identity, when it changed.
    public var proxy: ProxyIdentity?
    /// The new inbound ports (the whole list), when they changed.
    public var inbound: [InboundPort]?
    /// Outbound entries added or changed.
    public var outbound: [OutboundService]
    /// Outbound entries removed, as `host:port`.
    public var removedOutbound: [String]
    /// Clusters added or changed.
    public var clusters: [Cluster]
    /// Clusters removed, by name.
    public var removedClusters: [String]

    public init(
        version: String, base: String, proxy: ProxyIdentity? = nil, inbound: [InboundPort]? = nil,
        outbound: [OutboundService] = [], removedOutbound: [String] = [], clusters: [Cluster] = [],
        removedClusters: [String] = []
    ) {
        self.version = version
        self.base = base
        self.proxy = proxy
        self.inbound = inbound
        self.outbound = outbound
        self.removedOutbound = removedOutbound
        self.clusters = clusters
        self.removedClusters = removedClusters
    }

    /// The number of entries the delta carries (changed, added or removed).
    public var entryCount: Int {
        (self.proxy == nil ? 0 : 1) + (self.inbound == nil ? 0 : 1) + self.outbound.count
            + self.removedOutbound.count + self.clusters.count + self.removedClusters.count
    }

    /// What turns `old` into `new`; nil when a full config is the better message: a list out of canonical order
    /// (or with a duplicate key), or more than half of the entries changed.
    public static func between(_ old: ProxyConfig, _ new: ProxyConfig) -> ProxyConfigDelta? {
        guard old.isCanonicallyOrdered, new.isCanonicallyOrdered else { return nil }
        // A delta does not carry the unknown-destination policy: a change to it sends the full config.
        guard old.outboundUnknown == new.outboundUnknown else { return nil }
        var delta = ProxyConfigDelta(version: new.version, base: old.version)
        if old.proxy != new.proxy { delta.proxy = new.proxy }
        if old.inbound != new.inbound { delta.inbound = new.inbound }
        if old.outbound != new.outbound {
            (delta.outbound, delta.removedOutbound) = Self.changes(
                from: old.outbound, to: new.outbound, key: OutboundService.deltaKey,
                sameKey: { $0.port == $1.port && $0.host == $1.host }, before: OutboundService.precedes)
        }
        if old.clusters != new.clusters {
            (delta.clusters, delta.removedClusters) = Self.changes(
                from: old.clusters, to: new.clusters, key: \.name, sameKey: { $0.name == $1.name },
                before: { $0.name < $1.name })
        }
        let size = new.outbound.count + new.clusters.count + 2
        guard delta.entryCount * 2 <= size else { return nil }
        return delta
    }

    /// The config this delta makes of `config`.
    ///
    /// - Throws: `ProxyConfigError` (`delta_base`) when `config` is not the version the delta applies to.
    public func applied(to config: ProxyConfig) throws(ProxyConfigError) -> ProxyConfig {
        guard config.version == self.base else {
            throw ProxyConfigError(
                code: "delta_base",
                message: "the delta applies to version \(self.base), but the proxy runs \(config.version)")
        }
        var result = config
        result.version = self.version
        if let proxy = self.proxy { result.proxy = proxy }
        if let inbound = self.inbound { result.inbound = inbound }
        if !self.outbound.isEmpty || !self.removedOutbound.isEmpty {
            result.outbound = Self.merge(
                config.outbound, changed: self.outbound, removed: self.removedOutbound, key: OutboundService.deltaKey,
                before: OutboundService.precedes)
        }
        if !self.clusters.isEmpty || !self.removedClusters.isEmpty {
            result.clusters = Self.merge(
                config.clusters, changed: self.clusters, removed: self.removedClusters, key: \.name,
                before: { $0.name < $1.name })
        }
        return result
    }

    /// Entries of `new` that `old` lacks or holds differently, and keys of `old` that `new` lacks. Both lists are
    /// in canonical order, so one merge pass finds them (keys are spelled out only for removed entries).
    private static func changes<Entry: Equatable>(
        from old: [Entry], to new: [Entry], key: (Entry) -> String, sameKey: (Entry, Entry) -> Bool,
        before: (Entry, Entry) -> Bool
    ) -> ([Entry], [String]) {
        var changed: [Entry] = []
        var removed: [String] = []
        var i = old.startIndex
        var j = new.startIndex
        while i < old.endIndex, j < new.endIndex {
            if sameKey(old[i], new[j]) {
                if old[i] != new[j] { changed.append(new[j]) }
                i += 1
                j += 1
            } else if before(old[i], new[j]) {
                removed.append(key(old[i]))
                i += 1
            } else {
                changed.append(new[j])
                j += 1
            }
        }
        removed.append(contentsOf: old[i...].map(key))
        changed.append(contentsOf: new[j...])
        return (changed, removed)
    }

    /// `entries` without `removed`, with `changed` replacing or joining them, in canonical order.
    private static func merge<Entry>(
        _ entries: [Entry], changed: [Entry], removed: [String], key: (Entry) -> String,
        before: (Entry, Entry) -> Bool
    ) -> [Entry] {
        let gone = Set(removed)
        var replacements: [String: Entry] = [:]
        for entry in changed { replacements[key(entry)] = entry }
        var result: [Entry] = []
        result.reserveCapacity(entries.count + changed.count)
        for entry in entries {
            let name = key(entry)
            if gone.contains(name) { continue }
            if let replacement = replacements.removeValue(forKey: name) {
                result.append(replacement)
            } else {
                result.append(entry)
            }
        }
        if !replacements.isEmpty {
            // Added entries: into their canonical places (the rest is sorted already, so this is a merge).
            let added = changed.filter { replacements[key($0)] != nil }.sorted(by: before)
            var merged: [Entry] = []
            merged.reserveCapacity(result.count + added.count)
            var next = added.makeIterator()
            var pending = next.next()
            for entry in result {
                while let candidate = pending, before(candidate, entry) {
                    merged.append(candidate)
                    pending = next.next()
                }
                merged.append(entry)
            }
            while let candidate = pending {
                merged.append(candidate)
                pending = next.next()
            }
            result = merged
        }
        return result
    }
}

extension ProxyConfig {
    /// Whether the outbound list is sorted by host then port and the cluster list by name, with no key twice: the
    /// order the compiler writes, which a `ProxyConfigDelta` keeps.
    public var isCanonicallyOrdered: Bool {
        zip(self.outbound, self.outbound.dropFirst()).allSatisfy { OutboundService.precedes($0, $1) }
            && zip(self.clusters, self.clusters.dropFirst()).allSatisfy { $0.name < $1.name }
    }
}

extension OutboundService {
    /// The key of an outbound entry in a delta.
    static func deltaKey(_ service: OutboundService) -> String { "\(service.host):\(service.port)" }

    /// The canonical order: by host, then port.
    static func precedes(_ a: OutboundService, _ b: OutboundService) -> Bool {
        (a.host, a.port) < (b.host, b.port)
    }
}

extension ProxyConfigDelta {
    /// The canonical compact JSON the push stream carries.
    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    public static func decode(_ data: Data) throws -> ProxyConfigDelta {
        try JSONDecoder().decode(ProxyConfigDelta.self, from: data)
    }
}
