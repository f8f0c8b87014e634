import NIOCore
import NIOPosix
import ProxyConfig
import Testing
import WeftProxy

@Suite("weft-proxy endpoint choice and outlier detection")
struct ProxyBalancingTests {
    @Test func ringHashOnHeaderKeepsAUserOnOneUpstream() async throws {
        try await withUpstreams(["a", "b"]) { upstreams in
            var cluster = TestConfig.cluster("pool", ports: upstreams.map(\.port))
            cluster.loadBalancer = LoadBalancer(policy: .ringHash, hash: HashPolicy(header: "x-user"))
            let config = TestConfig.config(
                outbound: [TestConfig.service("catalog", routes: [TestConfig.forward(to: "pool")])],
                clusters: [cluster])
            try await ProxyHarness.withProxy(config: config) { proxy in
                var sticky: Set<String> = []
                for _ in 0..<50 {
                    let response = try await proxy.get("/", host: "catalog", headers: [("x-user", "alice")])
                    #expect(response.status == 200)
                    sticky.insert(response.server ?? "none")
                }
                #expect(sticky.count == 1)
                var spread: Set<String> = []
                for user in 0..<50 {
                    let response = try await proxy.get("/", host: "catalog", headers: [("x-user", "user-\(user)")])
                    #expect(response.status == 200)
                    spread.insert(response.server ?? "none")
                }
                #expect(spread == ["a", "b"])
            }
        }
    }

    @Test func outlierDetectionEjectsAFailingEndpoint() async throws {
        try await withUpstreams(["healthy", "broken"], statuses: ["broken": 503]) { upstreams in
            var cluster = TestConfig.cluster("pool", ports: upstreams.map(\.port))
            cluster.outlierDetection = OutlierDetection(
                consecutive5xxErrors: 2, consecutiveGatewayErrors: 0, intervalMs: 10_000,
                baseEjectionTimeMs: 600_000, maxEjectionPercent: 50)
            let config = TestConfig.config(
                outbound: [TestConfig.service("catalog", routes: [TestConfig.forward(to: "pool")])],
                clusters: [cluster])
            try await ProxyHarness.withProxy(config: config, singleEventLoop: true) { proxy in
                // Round robin alternates: the broken endpoint answers 503 twice within a few requests.
                var failures = 0
                for _ in 0..<10 where failures < 2 {
                    let response = try await proxy.get("/", host: "catalog")
                    if response.status == 503 {
                        #expect(response.server == "broken")
                        failures += 1
                    }
                }
                #expect(failures == 2)
                for _ in 0..<20 {
                    let response = try await proxy.get("/", host: "catalog")
                    #expect(response.status == 200)
                    #expect(response.server == "healthy")
                }
            }
        }
    }

    @Test func ejectedEndpointReturnsAfterItsEjectionTime() async throws {
        try await withUpstreams(["healthy", "flaky"], statuses: ["flaky": 503]) { upstreams in
            var cluster = TestConfig.cluster("pool", ports: upstreams.map(\.port))
            cluster.outlierDetection = OutlierDetection(
                consecutive5xxErrors: 1, consecutiveGatewayErrors: 0, intervalMs: 50,
                baseEjectionTimeMs: 300, maxEjectionPercent: 50)
            let config = TestConfig.config(
                outbound: [TestConfig.service("catalog", routes: [TestConfig.forward(to: "pool")])],
                clusters: [cluster])
            try await ProxyHarness.withProxy(config: config, singleEventLoop: true) { proxy in
                var firstFailure = false
                for _ in 0..<4 where !firstFailure {
                    firstFailure = try await proxy.get("/", host: "catalog").status == 503
                }
                #expect(firstFailure)
                // Ejected now; once its ejection time (300 ms) is over, it is tried again. (Only that it
                // returns is asserted: how long it stays out depends on how busy the machine is.)
                var returned = false
                for _ in 0..<50 where !returned {
                    try await Task.sleep(for: .milliseconds(100))
                    returned = try await proxy.get("/", host: "catalog").server == "flaky"
                }
                #expect(returned)
            }
        }
    }
}
