import ProxyConfig

/// Picks an endpoint of one cluster per request: round robin, least request (power of two choices),
/// random, or ring hash, as the cluster's `LoadBalancer` policy says.
///
/// Named `ClusterLoadBalancer` so that it does not clash with the config type `ProxyConfig.LoadBalancer`
/// in modules that import both.
///
/// Picks skip ejected and not-ready endpoints. When none is left, the balancer falls back to every ready
/// endpoint (ejections ignored), then to every endpoint (panic mode, as Envoy does); each `Pick` says which.
/// With zone awareness on, endpoints in the proxy's own zone are preferred while it has healthy ones there.
///
/// The candidate set is recomputed only when readiness or ejection changes, so a pick does not allocate.
/// A value confined to one event loop: one balancer per cluster per loop.
public struct ClusterLoadBalancer {
    /// Which endpoints a pick was drawn from.
    public enum Mode: Sendable, Hashable {
        /// Ready, not ejected endpoints (those of the local zone when zone awareness applies).
        case healthy
        /// No healthy endpoint: every ready endpoint, ejected ones included.
        case panicReady
        /// No ready endpoint either: every endpoint.
        case panicAll
    }

    /// The result of a pick.
    public struct Pick: Sendable, Hashable {
        /// The index of the endpoint in `endpoints`.
        public var endpoint: Int
        /// Which set it was drawn from.
        public var mode: Mode

        /// Creates a pick.
        public init(endpoint: Int, mode: Mode) {
            self.endpoint = endpoint
            self.mode = mode
        }
    }

    /// The cluster's endpoints; picks and `begin`/`end` refer to them by index.
    public let endpoints: [Endpoint]
    /// The balancing policy.
    public let policy: LoadBalancerPolicy
    /// The proxy's own zone, if known.
    public let localZone: String?
    /// Whether endpoints in `localZone` are preferred.
    public let zoneAware: Bool

    /// Which set the next pick is drawn from.
    public private(set) var mode: Mode = .healthy
    /// True when picks are restricted to the local zone.
    public private(set) var usesLocalZoneOnly = false

    private var ready: [Bool]
    private var ejected: [Bool]
    private var outstanding: [Int]
    private var candidates: [Int] = []
    private var isCandidate: [Bool]
    private var cursor = 0
    private let ring: HashRing

    /// A balancer for `cluster`'s endpoints and policy.
    public init(cluster: Cluster, localZone: String? = nil, zoneAware: Bool = true) {
        self.init(
            endpoints: cluster.endpoints, loadBalancer: cluster.loadBalancer, localZone: localZone,
            zoneAware: zoneAware)
    }

    /// A balancer for `endpoints` with the policy of `loadBalancer`.
    public init(endpoints: [Endpoint], loadBalancer: LoadBalancer, localZone: String? = nil, zoneAware: Bool = true) {
        self.endpoints = endpoints
        self.policy = loadBalancer.policy
        self.localZone = localZone
        self.zoneAware = zoneAware
        self.ready = endpoints.map(\.ready)
        self.ejected = Array(repeating: false, count: endpoints.count)
        self.outstanding = Array(repeating: 0, count: endpoints.count)
        self.isCandidate = Array(repeating: false, count: endpoints.count)
        self.candidates.reserveCapacity(endpoints.count)
        if loadBalancer.policy == .ringHash {
            self.ring = HashRing(
                endpoints: endpoints.map { ($0.address, $0.port, $0.weight) },
                minimumSize: loadBalancer.ringSize ?? HashRing.defaultMinimumSize)
        } else {
            self.ring = HashRing()
        }
        self.recompute()
    }

    // MARK: - Picking

    /// Picks an endpoint; `nil` only when the cluster has no endpoints. Ring hash without a key picks at random.
    public mutating func pick<Random: RandomSource>(using random: inout Random) -> Pick? {
        guard !self.candidates.isEmpty else { return nil }
        let endpoint: Int
        switch self.policy {
        case .roundRobin:
            endpoint = self.candidates[self.cursor]
            self.cursor += 1
            if self.cursor == self.candidates.count { self.cursor = 0 }
        case .leastRequest:
            endpoint = self.pickTwoChoices(using: &random)
        case .random, .ringHash:
            endpoint = self.candidates[random.nextIndex(below: self.candidates.count)]
        }
        return Pick(endpoint: endpoint, mode: self.mode)
    }

    /// Picks an endpoint for a request whose hash key (header value, cookie value or source IP, as the
    /// cluster's `HashPolicy` says) is `hashKey`. Policies other than ring hash ignore the key.
    public mutating func pick<Random: RandomSource, Key: Sequence>(
        hashKey: Key, using random: inout Random
    ) -> Pick? where Key.Element == UInt8 {
        guard self.policy == .ringHash, !self.ring.isEmpty, !self.candidates.isEmpty else {
            return self.pick(using: &random)
        }
        let count = self.ring.owners.count
        var position = self.ring.firstPosition(atOrAfter: HashRing.hash(hashKey))
        for _ in 0..<count {
            let owner = Int(self.ring.owners[position])
            if self.isCandidate[owner] { return Pick(endpoint: owner, mode: self.mode) }
            position += 1
            if position == count { position = 0 }
        }
        return Pick(endpoint: self.candidates[0], mode: self.mode)
    }

    /// The stable hash the ring uses, for callers that want to hash a key once and log or compare it.
    public static func hash<Key: Sequence>(_ key: Key) -> UInt64 where Key.Element == UInt8 {
        HashRing.hash(key)
    }

    private mutating func pickTwoChoices<Random: RandomSource>(using random: inout Random) -> Int {
        let count = self.candidates.count
        guard count > 1 else { return self.candidates[0] }
        let first = random.nextIndex(below: count)
        var second = random.nextIndex(below: count - 1)
        if second >= first { second += 1 }
        let a = self.candidates[first]
        let b = self.candidates[second]
        return self.outstanding[b] < self.outstanding[a] ? b : a
    }

    // MARK: - Load and health

    /// A request to `endpoint` started (least request counts outstanding requests).
    public mutating func begin(_ endpoint: Int) {
        guard self.outstanding.indices.contains(endpoint) else { return }
        self.outstanding[endpoint] += 1
    }

    /// A request to `endpoint` finished.
    public mutating func end(_ endpoint: Int) {
        guard self.outstanding.indices.contains(endpoint), self.outstanding[endpoint] > 0 else { return }
        self.outstanding[endpoint] -= 1
    }

    /// The number of requests to `endpoint` in flight.
    public func outstandingRequests(_ endpoint: Int) -> Int {
        self.outstanding.indices.contains(endpoint) ? self.outstanding[endpoint] : 0
    }

    /// Marks `endpoint` ejected or returned (from `OutlierDetector`).
    public mutating func setEjected(_ endpoint: Int, _ ejected: Bool) {
        guard self.ejected.indices.contains(endpoint), self.ejected[endpoint] != ejected else { return }
        self.ejected[endpoint] = ejected
        self.recompute()
    }

    /// Marks `endpoint` ready or not (for example from active health or a draining signal).
    public mutating func setReady(_ endpoint: Int, _ ready: Bool) {
        guard self.ready.indices.contains(endpoint), self.ready[endpoint] != ready else { return }
        self.ready[endpoint] = ready
        self.recompute()
    }

    /// Whether `endpoint` is currently marked ejected.
    public func isEjected(_ endpoint: Int) -> Bool {
        self.ejected.indices.contains(endpoint) && self.ejected[endpoint]
    }

    private func isHealthy(_ index: Int) -> Bool {
        self.ready[index] && !self.ejected[index]
    }

    private func isLocal(_ index: Int) -> Bool {
        guard let zone = self.localZone else { return false }
        return self.endpoints[index].zone == zone
    }

    private mutating func recompute() {
        self.candidates.removeAll(keepingCapacity: true)
        let indices = self.endpoints.indices
        var localOnly = false
        if self.zoneAware, self.localZone != nil {
            localOnly = indices.contains { self.isHealthy($0) && self.isLocal($0) }
        }
        for index in indices where self.isHealthy(index) && (!localOnly || self.isLocal(index)) {
            self.candidates.append(index)
        }
        self.mode = .healthy
        if self.candidates.isEmpty {
            for index in indices where self.ready[index] { self.candidates.append(index) }
            self.mode = .panicReady
        }
        if self.candidates.isEmpty {
            self.candidates.append(contentsOf: indices)
            self.mode = .panicAll
        }
        self.usesLocalZoneOnly = localOnly
        for index in indices { self.isCandidate[index] = false }
        for index in self.candidates { self.isCandidate[index] = true }
        if self.cursor >= self.candidates.count { self.cursor = 0 }
    }
}

@available(*, unavailable)
extension ClusterLoadBalancer: Sendable {}
