import ProxyConfig
import Testing

private let identity = ProxyIdentity(
    id: "shop/web-0", namespace: "shop", name: "web-0", serviceAccount: "web",
    spiffeID: "spiffe://cluster.local/ns/shop/sa/web", trustDomain: "cluster.local", addresses: ["10.0.0.5"])

private func service(_ host: String, port: Int = 80, alias: String = "") -> OutboundService {
    OutboundService(host: host, aliases: alias.isEmpty ? [] : [alias], port: port, protocol: .http1)
}

private func cluster(_ name: String, port: Int = 80) -> Cluster {
    Cluster(
        name: name, service: name, port: port, protocol: .http1, loadBalancer: LoadBalancer(policy: .roundRobin),
        limits: ConnectionLimits(
            maxConnections: 10, maxPendingRequests: 10, maxRequestsPerConnection: 0, connectTimeoutMs: 1000,
            idleTimeoutMs: 1000),
        retryBudget: RetryBudget(percent: 20, minRetriesPerSecond: 10), endpoints: [])
}

private func config(_ version: String, _ outbound: [OutboundService], _ clusters: [Cluster]) -> ProxyConfig {
    ProxyConfig(version: version, proxy: identity, outbound: outbound, clusters: clusters)
}

@Suite("ProxyConfigDelta")
struct ProxyConfigDeltaTests {
    static let base = config(
        "v1",
        ((0..<10).map { service("s\($0).shop.svc.cluster.local") } + [service("s1.shop.svc.cluster.local", port: 8080)])
            .sorted { ($0.host, $0.port) < ($1.host, $1.port) },
        (0..<10).map { cluster("c\($0)") })

    @Test("changed, added and removed entries rebuild the new config in canonical order")
    func addChangeRemove() throws {
        var new = Self.base
        new.version = "v2"
        new.outbound.remove(at: 3)  // removed
        new.outbound[0] = service(new.outbound[0].host, alias: "changed")  // changed
        new.outbound.append(service("zz.shop.svc.cluster.local"))  // added at the end
        new.outbound.insert(service("a.shop.svc.cluster.local"), at: 0)  // added at the start
        new.clusters.remove(at: 9)
        new.clusters.insert(cluster("c55"), at: 6)
        #expect(new.isCanonicallyOrdered)
        let delta = try #require(ProxyConfigDelta.between(Self.base, new))
        #expect(
            delta.outbound.map(\.host) == [
                "a.shop.svc.cluster.local", "s0.shop.svc.cluster.local",
                "zz.shop.svc.cluster.local",
            ])
        #expect(delta.removedOutbound == ["s2.shop.svc.cluster.local:80"])
        #expect(delta.clusters.map(\.name) == ["c55"])
        #expect(delta.removedClusters == ["c9"])
        #expect(delta.proxy == nil && delta.inbound == nil)
        #expect(try delta.applied(to: Self.base) == new)
    }

    @Test("the identity and inbound ports travel whole when they change")
    func identityAndInbound() throws {
        var new = Self.base
        new.version = "v2"
        new.proxy.addresses = ["10.0.0.6"]
        new.inbound = [InboundPort(port: 8080, protocol: .http1, tls: .strict, appPort: 8080)]
        let delta = try #require(ProxyConfigDelta.between(Self.base, new))
        #expect(delta.entryCount == 2)
        #expect(try delta.applied(to: Self.base) == new)
    }

    @Test("no delta for a list out of canonical order, or when most entries changed")
    func fullConfigInstead() {
        var unordered = Self.base
        unordered.version = "v2"
        unordered.outbound.swapAt(0, 1)
        #expect(!unordered.isCanonicallyOrdered)
        #expect(ProxyConfigDelta.between(Self.base, unordered) == nil)
        var duplicate = Self.base
        duplicate.clusters.append(cluster("c9"))
        #expect(!duplicate.isCanonicallyOrdered)
        var most = Self.base
        most.version = "v2"
        most.clusters = most.clusters.map { cluster($0.name, port: 81) }
        most.outbound = most.outbound.map { service($0.host, port: $0.port, alias: "x") }
        #expect(ProxyConfigDelta.between(Self.base, most) == nil)
    }

    @Test("a change of outboundUnknown sends the full config; a config without it passes through")
    func outboundUnknown() throws {
        var new = Self.base
        new.version = "v2"
        new.outboundUnknown = .refuse
        #expect(ProxyConfigDelta.between(Self.base, new) == nil)
        var same = new
        same.version = "v3"
        same.outbound[0] = service(same.outbound[0].host, alias: "changed")
        let delta = try #require(ProxyConfigDelta.between(new, same))
        #expect(try delta.applied(to: new).outboundUnknown == .refuse)
        // Absent in the JSON (older controllers, and the default): nil, which is passthrough.
        let decoded = try ProxyConfig.decode(try Self.base.encoded())
        #expect(decoded.outboundUnknown == nil)
        #expect(!String(decoding: try Self.base.encoded(), as: UTF8.self).contains("outboundUnknown"))
    }

    @Test("a delta applies only to the version it was made from")
    func wrongBase() throws {
        var new = Self.base
        new.version = "v2"
        new.outbound[0].aliases = ["x"]
        let delta = try #require(ProxyConfigDelta.between(Self.base, new))
        var other = Self.base
        other.version = "v0"
        #expect(throws: ProxyConfigError.self) { try delta.applied(to: other) }
        do {
            _ = try delta.applied(to: other)
        } catch {
            #expect(error.code == "delta_base")
        }
    }
}
