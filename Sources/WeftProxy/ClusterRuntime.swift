import NIOCore
import NIOHTTP1
import ProxyConfig
import ProxyCore

/// The mutable balancing state of one event loop for one `ProxyState`: per cluster, a `ClusterLoadBalancer`
/// and (when the cluster configures it) an `OutlierDetector`, each created on first use.
///
/// Confined to its event loop (no locks): every connection of that loop shares it. A config with another
/// version makes a new runtime, so balancing and ejection state is lost on reload (acceptable for now).
final class ClusterRuntime {
    /// The state this runtime balances for (kept so that the same content under the same version is reused).
    private let state: ProxyState
    private var balancers: [String: ClusterBalancer] = [:]
    /// Splits, fault and mirror percentages, trace IDs: a fast generator, seeded from the system's once.
    var random = SeededRandomSource(seed: UInt64.random(in: 0...UInt64.max))

    init(_ state: ProxyState) {
        self.state = state
    }

    /// Whether this runtime still fits `state` (the same object, or the same non-empty config version).
    func serves(_ state: ProxyState) -> Bool {
        if self.state === state {
            return true
        }
        let version = state.config.version
        return !version.isEmpty && version == self.state.config.version
    }

    /// The balancer of the cluster named `name`; `nil` when the config has no such cluster.
    func balancer(for name: String) -> ClusterBalancer? {
        if let balancer = self.balancers[name] {
            return balancer
        }
        guard let cluster = self.state.clusters[name] else {
            return nil
        }
        let balancer = ClusterBalancer(cluster, localZone: self.state.config.proxy.zone)
        self.balancers[name] = balancer
        return balancer
    }
}

@available(*, unavailable)
extension ClusterRuntime: Sendable {}

/// One cluster's balancer and outlier detector on one event loop.
final class ClusterBalancer {
    let cluster: Cluster
    private var balancer: ClusterLoadBalancer
    private var detector: OutlierDetector?
    var random = SeededRandomSource(seed: UInt64.random(in: 0...UInt64.max))
    /// The cluster's retry budget on this event loop.
    var budget: RetryBudgetTracker
    private let connectTimeout: TimeAmount

    init(_ cluster: Cluster, localZone: String?) {
        self.cluster = cluster
        self.budget = RetryBudgetTracker(cluster.retryBudget)
        let connectTimeoutMs = cluster.limits.connectTimeoutMs
        self.connectTimeout = .milliseconds(Int64(connectTimeoutMs > 0 ? connectTimeoutMs : 1000))
        self.balancer = ClusterLoadBalancer(cluster: cluster, localZone: localZone)
        self.detector = cluster.outlierDetection.map {
            OutlierDetector(config: $0, endpointCount: cluster.endpoints.count)
        }
    }

    /// Counts an original request (not a retry) in the retry budget.
    func recordRequest() {
        self.budget.recordRequest(now: NIODeadline.now().uptimeNanoseconds)
    }

    /// Where a try to `endpoint` goes, for a downstream request of `version`.
    func target(_ endpoint: Endpoint, downstream version: HTTPVersion) -> UpstreamTarget {
        UpstreamTarget(
            host: endpoint.address, port: endpoint.port,
            protocolKind: upstreamProtocol(self.cluster.protocol, downstream: version), cluster: self.cluster.name,
            limits: self.cluster.limits, connectTimeout: self.connectTimeout, identity: endpoint.identity)
    }

    /// Picks an endpoint for a request and counts it as started (`begin`); the caller ends the returned lease
    /// exactly once. `nil` when the cluster has no endpoints.
    func pick(_ head: HTTPRequestHead, remoteAddress: SocketAddress?) -> EndpointLease? {
        if self.detector != nil {
            let now = NIODeadline.now().uptimeNanoseconds
            for endpoint in self.detector?.tick(now: now) ?? [] {
                self.balancer.setEjected(endpoint, false)
            }
        }
        let pick: ClusterLoadBalancer.Pick?
        if self.balancer.policy == .ringHash, let key = self.hashKey(head, remoteAddress: remoteAddress) {
            pick = self.balancer.pick(hashKey: key.utf8, using: &self.random)
        } else {
            pick = self.balancer.pick(using: &self.random)
        }
        guard let pick, self.balancer.endpoints.indices.contains(pick.endpoint) else {
            return nil
        }
        self.balancer.begin(pick.endpoint)
        return EndpointLease(
            balancer: self, index: pick.endpoint, endpoint: self.balancer.endpoints[pick.endpoint])
    }

    /// The ring hash key of a request as the cluster's hash policy says: a header value, a cookie value, or
    /// the client's IP; `nil` when the request has none (the pick is then random).
    private func hashKey(_ head: HTTPRequestHead, remoteAddress: SocketAddress?) -> String? {
        guard let policy = self.cluster.loadBalancer.hash else {
            return nil
        }
        if let header = policy.header {
            return head.headers.first(name: header)
        }
        if let cookie = policy.cookie {
            return cookieValue(named: cookie.name, in: head.headers)
        }
        if policy.sourceIP == true {
            return remoteAddress?.ipAddress
        }
        return nil
    }

    fileprivate func end(_ endpoint: Int) {
        self.balancer.end(endpoint)
    }

    fileprivate func record(_ outcome: OutlierDetector.Outcome, endpoint: Int) {
        guard self.detector != nil else {
            return
        }
        let now = NIODeadline.now().uptimeNanoseconds
        if let ejection = self.detector?.record(outcome, endpoint: endpoint, now: now) {
            self.balancer.setEjected(ejection.endpoint, true)
        }
    }
}

@available(*, unavailable)
extension ClusterBalancer: Sendable {}

/// The value of cookie `name` in the request's `Cookie` headers, if present.
func cookieValue(named name: String, in headers: HTTPHeaders) -> String? {
    for header in headers[canonicalForm: "cookie"] {
        for pair in header.split(separator: ";") {
            let trimmed = pair.drop(while: { $0 == " " })
            guard let equals = trimmed.firstIndex(of: "=") else {
                continue
            }
            if trimmed[..<equals] == name {
                return String(trimmed[trimmed.index(after: equals)...])
            }
        }
    }
    return nil
}

/// One request's hold on an endpoint: its outcome feeds outlier detection, and `end` releases it for least
/// request. Used on the event loop of its balancer only.
struct EndpointLease {
    fileprivate let balancer: ClusterBalancer
    /// The endpoint's index in the cluster.
    let index: Int
    let endpoint: Endpoint

    /// Records a response status or a connect failure for passive outlier detection.
    func record(_ outcome: OutlierDetector.Outcome) {
        self.balancer.record(outcome, endpoint: self.index)
    }

    /// The request is over (call once).
    func end() {
        self.balancer.end(self.index)
    }
}

/// The `ClusterRuntime` of each event loop of a listener's group, created lazily on that loop. The table of
/// boxes is fixed at init; each box is read and written only on its own loop, so no lock is needed.
final class ClusterRuntimes: Sendable {
    private let boxes: [ObjectIdentifier: NIOLoopBoundBox<ClusterRuntime?>]

    init(group: any EventLoopGroup) {
        var boxes: [ObjectIdentifier: NIOLoopBoundBox<ClusterRuntime?>] = [:]
        for loop in group.makeIterator() {
            boxes[ObjectIdentifier(loop)] = .makeEmptyBox(valueType: ClusterRuntime.self, eventLoop: loop)
        }
        self.boxes = boxes
    }

    /// The runtime of `loop` for `state` (rebuilt when the config changed); call on `loop`. `nil` when `loop`
    /// is not one of the group's.
    func runtime(for state: ProxyState, on loop: any EventLoop) -> ClusterRuntime? {
        guard let box = self.boxes[ObjectIdentifier(loop)] else {
            return nil
        }
        if let runtime = box.value, runtime.serves(state) {
            return runtime
        }
        let runtime = ClusterRuntime(state)
        box.value = runtime
        return runtime
    }
}
