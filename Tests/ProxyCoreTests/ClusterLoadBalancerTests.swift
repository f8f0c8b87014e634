import ProxyConfig
import ProxyCore
import Testing

private func endpoints(_ count: Int, zone: (Int) -> String? = { _ in nil }) -> [Endpoint] {
    (0..<count).map { Endpoint(address: "10.0.0.\($0 + 1)", port: 8080, zone: zone($0)) }
}

private func balancer(
    _ policy: LoadBalancerPolicy, _ endpoints: [Endpoint], localZone: String? = nil, zoneAware: Bool = true
) -> ClusterLoadBalancer {
    ClusterLoadBalancer(
        endpoints: endpoints, loadBalancer: LoadBalancer(policy: policy), localZone: localZone, zoneAware: zoneAware)
}

private func picks(_ lb: inout ClusterLoadBalancer, _ count: Int, seed: UInt64 = 1) -> [Int] {
    var random = SeededRandomSource(seed: seed)
    return (0..<count).compactMap { _ in lb.pick(using: &random)?.endpoint }
}

@Suite("ClusterLoadBalancer")
struct ClusterLoadBalancerTests {
    @Test("round robin visits endpoints in order and wraps")
    func roundRobinOrder() {
        var lb = balancer(.roundRobin, endpoints(3))
        #expect(picks(&lb, 7) == [0, 1, 2, 0, 1, 2, 0])
    }

    @Test("round robin skips ejected and not-ready endpoints")
    func roundRobinSkips() {
        var eps = endpoints(4)
        eps[1].ready = false
        var lb = balancer(.roundRobin, eps)
        lb.setEjected(2, true)
        #expect(picks(&lb, 4) == [0, 3, 0, 3])
        lb.setEjected(2, false)
        #expect(Set(picks(&lb, 3)) == [0, 2, 3])
    }

    @Test("the cluster initializer takes the cluster's endpoints and policy")
    func fromCluster() {
        let cluster = Cluster(
            name: "outbound|80||a.ns.svc.cluster.local", service: "a.ns.svc.cluster.local", port: 80,
            protocol: .http1, loadBalancer: LoadBalancer(policy: .roundRobin),
            limits: ConnectionLimits(
                maxConnections: 10, maxPendingRequests: 10, maxRequestsPerConnection: 0, connectTimeoutMs: 1000,
                idleTimeoutMs: 1000),
            retryBudget: RetryBudget(percent: 20, minRetriesPerSecond: 10), endpoints: endpoints(2))
        var lb = ClusterLoadBalancer(cluster: cluster)
        #expect(lb.policy == .roundRobin)
        #expect(picks(&lb, 3) == [0, 1, 0])
    }

    @Test("no endpoints: no pick")
    func empty() {
        var lb = balancer(.leastRequest, [])
        var random = SeededRandomSource(seed: 1)
        #expect(lb.pick(using: &random) == nil)
        #expect(lb.pick(hashKey: "x".utf8, using: &random) == nil)
    }

    @Test("least request picks the less loaded of its two choices")
    func powerOfTwoChoices() {
        var lb = balancer(.leastRequest, endpoints(2))
        for _ in 0..<5 { lb.begin(0) }
        // With two endpoints both are always the two choices, so the idle one wins every time.
        #expect(picks(&lb, 20, seed: 7) == Array(repeating: 1, count: 20))
        for _ in 0..<10 { lb.begin(1) }
        #expect(picks(&lb, 20, seed: 7) == Array(repeating: 0, count: 20))
        for _ in 0..<10 { lb.end(1) }
        lb.end(1)  // more ends than begins never go below zero
        #expect(lb.outstandingRequests(1) == 0)
    }

    @Test("least request never picks the most loaded of many endpoints")
    func powerOfTwoAvoidsHotEndpoint() {
        var lb = balancer(.leastRequest, endpoints(5))
        for _ in 0..<100 { lb.begin(3) }
        let chosen = picks(&lb, 500, seed: 42)
        #expect(!chosen.contains(3))
        #expect(Set(chosen) == [0, 1, 2, 4])
    }

    @Test("random is reproducible with a seed and covers every endpoint")
    func random() {
        var a = balancer(.random, endpoints(4))
        var b = balancer(.random, endpoints(4))
        let first = picks(&a, 100, seed: 9)
        #expect(first == picks(&b, 100, seed: 9))
        #expect(Set(first) == [0, 1, 2, 3])
    }

    @Test("panic mode: all ejected falls back to ready endpoints, none ready to all")
    func panicMode() {
        var eps = endpoints(3)
        eps[2].ready = false
        var lb = balancer(.roundRobin, eps)
        var random = SeededRandomSource(seed: 1)
        #expect(lb.pick(using: &random)?.mode == .healthy)
        lb.setEjected(0, true)
        lb.setEjected(1, true)
        #expect(lb.mode == .panicReady)
        #expect(Set(picks(&lb, 4)) == [0, 1])
        #expect(lb.pick(using: &random)?.mode == .panicReady)
        lb.setReady(0, false)
        lb.setReady(1, false)
        #expect(lb.mode == .panicAll)
        #expect(Set(picks(&lb, 6)) == [0, 1, 2])
        lb.setReady(2, true)
        #expect(lb.pick(using: &random) == ClusterLoadBalancer.Pick(endpoint: 2, mode: .healthy))
    }

    @Test("zone aware: local endpoints while one is healthy, then every zone")
    func zonePreference() {
        let eps = endpoints(4) { $0 < 2 ? "zone-a" : "zone-b" }
        var lb = balancer(.roundRobin, eps, localZone: "zone-b")
        #expect(lb.usesLocalZoneOnly)
        #expect(picks(&lb, 4) == [2, 3, 2, 3])
        lb.setEjected(2, true)
        #expect(picks(&lb, 2) == [3, 3])
        lb.setEjected(3, true)
        #expect(!lb.usesLocalZoneOnly)
        #expect(lb.mode == .healthy)
        #expect(Set(picks(&lb, 4)) == [0, 1])

        var off = balancer(.roundRobin, eps, localZone: "zone-b", zoneAware: false)
        #expect(picks(&off, 4) == [0, 1, 2, 3])
        var unknownZone = balancer(.roundRobin, eps, localZone: "zone-c")
        #expect(picks(&unknownZone, 4) == [0, 1, 2, 3])
    }
}

@Suite("ClusterLoadBalancer ring hash")
struct RingHashTests {
    private static func ring(_ eps: [Endpoint], size: Int? = nil) -> ClusterLoadBalancer {
        ClusterLoadBalancer(
            endpoints: eps,
            loadBalancer: LoadBalancer(policy: .ringHash, hash: HashPolicy(header: "x-user"), ringSize: size))
    }

    private static func assignments(_ lb: inout ClusterLoadBalancer, keys: Int) -> [String: String] {
        var random = SeededRandomSource(seed: 1)
        var result: [String: String] = [:]
        for key in (0..<keys).map({ "user-\($0)" }) {
            guard let pick = lb.pick(hashKey: key.utf8, using: &random) else { continue }
            result[key] = lb.endpoints[pick.endpoint].address
        }
        return result
    }

    @Test("the same key always lands on the same endpoint, across balancers")
    func stable() {
        var a = Self.ring(endpoints(5))
        var b = Self.ring(endpoints(5))
        let first = Self.assignments(&a, keys: 200)
        #expect(first == Self.assignments(&a, keys: 200))
        #expect(first == Self.assignments(&b, keys: 200))
        #expect(Set(first.values).count == 5)
    }

    @Test("the hash is FNV-1a with a finalizer, stable across runs")
    func hashIsStable() {
        #expect(ClusterLoadBalancer.hash("user-1".utf8) == ClusterLoadBalancer.hash(Array("user-1".utf8)))
        #expect(ClusterLoadBalancer.hash("user-1".utf8) != ClusterLoadBalancer.hash("user-2".utf8))
    }

    /// Counts whose removal keeps the points per weight (a power of two ≥ 1024 / n): 5→4, 10→9, 12→11.
    /// Crossing a power of two (16→15) doubles every endpoint's points and moves about half the keys.
    @Test("removing one of n endpoints moves only the keys it owned (about 1/n)", arguments: [5, 10, 12])
    func removal(count: Int) {
        let eps = endpoints(count)
        var full = Self.ring(eps)
        var reduced = Self.ring(Array(eps.dropLast()))
        let keys = 4000
        let before = Self.assignments(&full, keys: keys)
        let after = Self.assignments(&reduced, keys: keys)
        let removed = eps[count - 1].address
        let moved = before.filter { after[$0.key] != $0.value }
        #expect(moved.allSatisfy { $0.value == removed })
        let fraction = Double(moved.count) / Double(keys)
        #expect(fraction < 2.0 / Double(count))
        #expect(fraction > 0.3 / Double(count))
    }

    @Test("an ejected endpoint's keys move to the next point; the others stay")
    func ejection() {
        var lb = Self.ring(endpoints(6))
        let before = Self.assignments(&lb, keys: 1000)
        lb.setEjected(2, true)
        let after = Self.assignments(&lb, keys: 1000)
        for (key, address) in before where address != "10.0.0.3" {
            #expect(after[key] == address)
        }
        #expect(!after.values.contains("10.0.0.3"))
    }

    @Test("weights give proportionally more keys")
    func weights() {
        var eps = endpoints(2)
        eps[1].weight = 3
        var lb = Self.ring(eps)
        let share = Self.assignments(&lb, keys: 4000).values.filter { $0 == "10.0.0.2" }.count
        #expect(share > 2400 && share < 3600)
    }
}
