import AsyncHTTPClient
import NIOCore
import ProxyConfig
import Testing
import WeftProxy

/// HTTP/2 upstreams (NIOHTTP2 servers) that refuse streams or go away.
@Suite("weft-proxy HTTP/2 upstreams: REFUSED_STREAM and GOAWAY")
struct ProxyHTTP2UpstreamTests {
    @Test func refusedStreamsAreRetriedEvenForPOST() async throws {
        let upstream = try await H2Upstream.start(name: "h2", refuseFirst: 1)
        var route = TestConfig.forward(to: "h2")
        // `refused-stream` alone: a refused stream never reached the app, so even a POST is retried.
        route.forward?.retry = RetryPolicy(attempts: 2, retryOn: ["refused-stream"], backoffBaseMs: 1, backoffMaxMs: 5)
        let config = TestConfig.config(
            outbound: [TestConfig.service("grpcish", protocol: .http2, routes: [route])],
            clusters: [TestConfig.cluster("h2", protocol: .http2, ports: [upstream.port])])
        try await ProxyHarness.withProxy(config: config, singleEventLoop: true) { proxy in
            let response = try await proxy.get(
                "/order", host: "grpcish", method: .POST, body: ByteBuffer(string: "one order"))
            #expect(response.status == 200, "\(response.reason ?? "")")
            #expect(response.headers.first(name: "x-h2-upstream") == "h2")
            #expect(upstream.refused == 1)
            #expect(upstream.streams == 2)
            #expect(proxy.metrics.renderStats().contains("outbound.retries.granted: 1"))
        }
        await upstream.stop()
    }

    @Test func afterGOAWAYNewRequestsUseANewConnectionAndInFlightOnesFinish() async throws {
        let upstream = try await H2Upstream.start(name: "h2")
        let config = TestConfig.config(
            outbound: [TestConfig.service("grpcish", protocol: .http2, routes: [TestConfig.forward(to: "h2")])],
            clusters: [TestConfig.cluster("h2", protocol: .http2, ports: [upstream.port])])
        try await ProxyHarness.withProxy(config: config, singleEventLoop: true) { proxy in
            // `/hold`: the upstream sends GOAWAY, then this response's head, and holds its body. Once the head
            // is here, the proxy has read the GOAWAY (same connection, in order).
            var hold = HTTPClientRequest(url: "http://127.0.0.1:\(proxy.outboundPort)/hold")
            hold.headers.add(name: "host", value: "grpcish")
            let held = try await testClient.execute(hold, timeout: .seconds(10))
            #expect(held.status == .ok)
            // A new request must not go to the connection that is going away.
            let next = try await proxy.get("/next", host: "grpcish")
            #expect(next.status == 200, "\(next.reason ?? "")")
            #expect(String(buffer: next.body) == "h2:/next")
            #expect(upstream.connections == 2)
            // The in-flight stream still finishes on the old connection.
            upstream.release()
            let body = try await held.body.collect(upTo: 1 << 20)
            #expect(String(buffer: body) == "released")
        }
        await upstream.stop()
    }
}
