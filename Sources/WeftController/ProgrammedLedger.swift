import KubeModel
import WeftCompiler

/// What each proxy was sent and acknowledged, against the compiles the controller made: the source of the
/// `Programmed` condition and of `weftctl proxy-status`. Pure: the push service feeds it events.
///
/// Compiles are numbered. A proxy that acknowledged version `v` runs what every compile since `v` became its
/// desired version produced for it (a config is a function of the snapshot), so its `ackedThrough` is the
/// newest compile whose version for it is `v`. A resource whose current generation first appeared in compile
/// `n` is programmed on a proxy when that proxy's `ackedThrough >= n`.
public struct ProgrammedLedger: Sendable {
    /// A version and the compile it holds through.
    struct VersionThrough: Sendable, Hashable {
        var version: String
        var through: UInt64
    }

    /// A refused version and the proxy's error.
    public struct Refusal: Sendable, Hashable, Codable {
        public var version: String
        public var error: String

        public init(version: String, error: String) {
            self.version = version
            self.error = error
        }
    }

    public struct Proxy: Sendable, Hashable {
        /// The version the newest compile wants it to run, and the compile that first wanted it.
        public var desired: String
        var desiredSince: UInt64
        /// The version wanted before, and the last compile that wanted it.
        var previous: VersionThrough?
        /// The version it acknowledged last.
        public var acknowledged: String?
        /// The newest compile its acknowledged config is equal to.
        var ackedThrough: UInt64?
        /// The last version it refused, and why, while it is still the desired one.
        public var refused: Refusal?

        /// Whether it runs the newest desired version.
        public var isSynced: Bool { self.acknowledged == self.desired }
    }

    public private(set) var compiles: UInt64 = 0
    public private(set) var proxies: [String: Proxy] = [:]
    /// Each resource's generation and the compile it first appeared in.
    private var resources: [ResourceRef: (generation: Int64?, since: UInt64)] = [:]

    public init() {}

    /// A compile: the version it made for each proxy, and each resource's generation.
    public mutating func compiled(versions: [String: String], generations: [ResourceRef: Int64?]) {
        self.compiles += 1
        let compile = self.compiles
        var proxies: [String: Proxy] = [:]
        for (id, version) in versions {
            guard var proxy = self.proxies[id] else {
                proxies[id] = Proxy(desired: version, desiredSince: compile)
                continue
            }
            if proxy.desired != version {
                proxy.previous = VersionThrough(version: proxy.desired, through: compile - 1)
                proxy.desired = version
                proxy.desiredSince = compile
                if proxy.refused?.version != version { proxy.refused = nil }
            }
            if proxy.acknowledged == version { proxy.ackedThrough = compile }
            proxies[id] = proxy
        }
        self.proxies = proxies
        var resources: [ResourceRef: (generation: Int64?, since: UInt64)] = [:]
        for (ref, generation) in generations {
            if let known = self.resources[ref], known.generation == generation {
                resources[ref] = known
            } else {
                resources[ref] = (generation, compile)
            }
        }
        self.resources = resources
    }

    /// The proxy applied `version`.
    public mutating func acknowledged(_ id: String, version: String) {
        guard var proxy = self.proxies[id] else { return }
        proxy.acknowledged = version
        if version == proxy.desired {
            proxy.ackedThrough = self.compiles
            proxy.refused = nil
        } else if let previous = proxy.previous, previous.version == version {
            proxy.ackedThrough = previous.through
        }
        self.proxies[id] = proxy
    }

    /// The proxy refused `version` and keeps its last good config.
    public mutating func refused(_ id: String, version: String, error: String) {
        guard var proxy = self.proxies[id] else { return }
        proxy.refused = Refusal(version: version, error: error)
        self.proxies[id] = proxy
    }

    /// The `Programmed` condition of a resource affecting `affected` proxies (`ns/pod`, `ns/*` or `*`).
    public func programmed(
        _ ref: ResourceRef, affected: [String], accepted: Bool, generation: Int64?
    ) -> meta.v1.Condition {
        func make(_ status: meta.v1.Condition.Status, _ reason: String, _ message: String) -> meta.v1.Condition {
            meta.v1.Condition(
                type: ConditionType.programmed, status: status, observedGeneration: generation, reason: reason,
                message: message)
        }
        guard accepted else {
            return make(.false, ConditionReason.invalid, "The resource is not accepted, so no proxy runs it.")
        }
        let ids = self.resolve(affected)
        guard let since = self.resources[ref]?.since else {
            return make(.unknown, ConditionReason.pending, "Not compiled yet.")
        }
        var acknowledged = 0
        var refusals: [String] = []
        for id in ids {
            guard let proxy = self.proxies[id] else { continue }
            if let through = proxy.ackedThrough, through >= since {
                acknowledged += 1
            } else if let refused = proxy.refused, refused.version == proxy.desired {
                refusals.append("\(id): \(refused.error)")
            }
        }
        let counted = "\(acknowledged)/\(ids.count) proxies acknowledged"
        if !refusals.isEmpty {
            return make(
                .false, ConditionReason.rejected,
                ConditionMessage.join(["\(counted); \(refusals.count) rejected the config"] + refusals.sorted()))
        }
        if acknowledged < ids.count { return make(.false, ConditionReason.pending, counted) }
        return make(.true, ConditionReason.programmed, counted)
    }

    /// The known proxy IDs a list of `ns/pod`, `ns/*` and `*` names.
    func resolve(_ affected: [String]) -> [String] {
        var ids = Set<String>()
        for pattern in affected {
            if pattern == "*" { return self.proxies.keys.sorted() }
            if pattern.hasSuffix("/*") {
                let prefix = pattern.dropLast()
                ids.formUnion(self.proxies.keys.filter { $0.hasPrefix(prefix) })
            } else if self.proxies[pattern] != nil {
                ids.insert(pattern)
            }
        }
        return ids.sorted()
    }
}
