import NIOCore
import ProxyConfig
import Testing

@testable import WeftProxy

/// How the listeners read a connection's original destination, without a kernel: the classification, and the
/// outbound and inbound choices a captured destination leads to (the two-pod test runs them for real).
@Suite("capture routing")
struct CaptureRoutingTests {
    static func address(_ host: String, _ port: Int) throws -> SocketAddress {
        try SocketAddress(ipAddress: host, port: port)
    }

    @Test func aConnectionNotRedirectedStaysExplicitAndOneForTheProxysOwnPortsIsALoop() throws {
        let local = try Self.address("127.0.0.1", 15001)
        let ports: Set<Int> = [15001, 15006]
        #expect(CaptureClassification.classify(original: nil, local: local, proxyPorts: ports) == .explicit)
        #expect(CaptureClassification.classify(original: local, local: local, proxyPorts: ports) == .explicit)
        let captured = CaptureClassification.classify(
            original: try Self.address("10.96.0.10", 80), local: local, proxyPorts: ports)
        #expect(captured == .captured(CapturedDestination(host: "10.96.0.10", port: 80)))
        for port in [15001, 15006] {
            let loop = CaptureClassification.classify(
                original: try Self.address("10.0.0.7", port), local: local, proxyPorts: ports)
            #expect(loop == .loop)
        }
        #expect(CapturedDestination(host: "fd00::1", port: 80).authority == "[fd00::1]:80")
    }

    static func state(_ unknown: UnknownDestinationPolicy? = nil) throws -> ProxyState {
        var web = TestConfig.cluster("web", ports: [8080])
        web.endpoints = [Endpoint(address: "10.1.0.5", port: 8080, identity: "spiffe://cluster.local/ns/shop/sa/web")]
        var db = TestConfig.cluster("db", protocol: .tcp, ports: [])
        db.endpoints = [Endpoint(address: "10.1.0.9", port: 5432)]
        var webService = TestConfig.service("web", routes: [TestConfig.forward(to: "web")])
        webService.aliases.append("10.96.0.10")
        var dbService = TestConfig.service("db", protocol: .tcp, routes: [])
        dbService.aliases.append("10.96.0.20")
        dbService.port = 5432
        dbService.tcp = TCPRoute(name: "db", backends: [WeightedCluster(cluster: "db", weight: 1)])
        var config = TestConfig.config(outbound: [dbService, webService], clusters: [db, web])
        config.outboundUnknown = unknown
        return try ProxyState(config: config, json: nil)
    }

    @Test func outboundByClusterIPPodIPOrNeither() throws {
        let state = try Self.state()
        let runtime = ClusterRuntime(state)
        func decide(_ host: String, _ port: Int) -> CapturedOutbound {
            state.decideCaptured(CapturedDestination(host: host, port: port), runtime: runtime, remoteAddress: nil)
        }
        guard case .http(let service) = decide("10.96.0.10", 80) else {
            Issue.record("the ClusterIP of an HTTP service routes by its routes")
            return
        }
        #expect(service.host == "web.shop.svc.cluster.local")
        guard case .tcp(let target, _, _) = decide("10.96.0.20", 5432) else {
            Issue.record("the ClusterIP of a TCP service takes its TCP route")
            return
        }
        #expect(target.host == "10.1.0.9" && target.port == 5432 && target.identity == nil)
        guard case .tcp(let pod, _, _) = decide("10.1.0.5", 8080) else {
            Issue.record("a mesh endpoint's pod IP and port is TCP to it")
            return
        }
        #expect(pod.host == "10.1.0.5" && pod.identity == "spiffe://cluster.local/ns/shop/sa/web")
        // The right IP on another port is not that service.
        guard case .passthrough(let other) = decide("10.96.0.10", 9999) else {
            Issue.record("an unknown destination passes through by default")
            return
        }
        #expect(other == CapturedDestination(host: "10.96.0.10", port: 9999))
        let refusing = try Self.state(.refuse)
        let refused = refusing.decideCaptured(
            CapturedDestination(host: "192.0.2.1", port: 443), runtime: ClusterRuntime(refusing), remoteAddress: nil)
        guard case .refuse = refused else {
            Issue.record("outboundUnknown: refuse closes an unknown destination")
            return
        }
    }

    @Test func inboundByOriginalPortAndAnUnlistedPortIsTCPToTheApp() {
        let config = TestConfig.config(
            outbound: [], clusters: [],
            inbound: [
                InboundPort(port: 8080, protocol: .http1, tls: .strict, appPort: 8080),
                InboundPort(port: 9000, protocol: .grpc, tls: .strict, appPort: 9001),
            ])
        #expect(config.inboundPort(captured: nil)?.port == 8080)
        #expect(config.inboundPort(captured: CapturedDestination(host: "10.1.0.5", port: 9000))?.appPort == 9001)
        let unlisted = config.inboundPort(captured: CapturedDestination(host: "10.1.0.5", port: 7777))
        #expect(unlisted == InboundPort(port: 7777, protocol: .tcp, tls: .permissive, appPort: 7777))
    }
}
