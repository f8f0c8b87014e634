import ProxyConfig
import Testing

/// The short name of a Service reaches it only from its own namespace, as the cluster DNS search path does;
/// the proxy derives it from the FQDN and its own namespace (the compiler does not list it).
@Suite("Short service names")
struct ShortNameTests {
    static func config(namespace: String) -> ProxyConfig {
        let identity = ProxyIdentity(
            id: "\(namespace)/client-0", namespace: namespace, name: "client-0", serviceAccount: "client",
            spiffeID: "spiffe://cluster.local/ns/\(namespace)/sa/client", trustDomain: "cluster.local",
            addresses: ["10.0.0.9"])
        let catalog = OutboundService(
            host: "catalog.shop.svc.cluster.local", aliases: ["10.96.0.10", "catalog.shop", "catalog.shop.svc"],
            port: 80, protocol: .http1,
            routes: [
                Route(name: "default", forward: ForwardAction(backends: [WeightedCluster(cluster: "c", weight: 100)]))
            ])
        return ProxyConfig(proxy: identity, outbound: [catalog])
    }

    @Test(
        "a proxy in the Service's namespace reaches it by short name", arguments: ["catalog", "catalog:80", "CATALOG"])
    func sameNamespace(_ authority: String) throws {
        let table = try RouteTable(Self.config(namespace: "shop"))
        #expect(table.match(RequestInfo(authority: authority))?.service.host == "catalog.shop.svc.cluster.local")
    }

    @Test(
        "a proxy in another namespace does not, but reaches it by its longer names",
        arguments: [("catalog", false), ("catalog.shop", true), ("catalog.shop.svc.cluster.local", true)])
    func otherNamespace(_ authority: String, _ reachable: Bool) throws {
        let table = try RouteTable(Self.config(namespace: "web"))
        #expect((table.match(RequestInfo(authority: authority)) != nil) == reachable)
    }
}
