import AsyncHTTPClient
import NIOCore
import ProxyConfig
import Testing
import WeftProxy

/// HTTP/2 upstreams (NIOHTTP2 servers) that refuse streams or go away, and flow control on the upstream leg
/// (`HTTP2ClientConnection`, which runs the streams without a channel each) both ways, h2 to h2.
@Suite("weft-proxy HTTP/2 upstreams: REFUSED_STREAM, GOAWAY, flow control")
struct ProxyHTTP2UpstreamTests {
    private static func h2Catalog(port: Int) -> ProxyConfig {
        TestConfig.config(
            outbound: [TestConfig.service("catalog", protocol: .http2, routes: [TestConfig.forward(to: "h2")])],
            clusters: [TestConfig.cluster("h2", protocol: .http2, ports: [port])])
    }

    @Test func h2ToH2ABodyLargerThanEveryWindowCrossesBothWaysIntact() async throws {
        let upstream = try await H2Upstream.start(name: "h2")
        do {
            try await ProxyHarness.withProxy(config: Self.h2Catalog(port: upstream.port)) { proxy in
                // 3 MiB up through the proxy's downstream window (1 MiB) and the upstream's (64 KiB, NIO's
                // default), and back down through the proxy's upstream window (1 MiB) and the client's (64 KiB).
                let size = 3 << 20
                let client = try await H2Probe.start(
                    port: proxy.outboundPort, method: "POST", path: "/echo", reads: true, upload: size)
                try await eventually { client.finished }
                #expect(client.status == 200)
                #expect(client.sentBytes == size)
                #expect(client.receivedBytes == size)
                #expect(client.receivedIntact, "the echoed body differs from what was sent")
                await client.close()
            }
            // The request block the upstream got: pseudo-header fields first, `:authority` from the client's, no
            // `host` or connection-specific field, names in lower case.
            let block = upstream.lastRequest
            #expect(Array(block.prefix(4).map(\.0)) == [":method", ":scheme", ":authority", ":path"])
            #expect(block.first { $0.0 == ":authority" }?.1 == "catalog")
            #expect(block.first { $0.0 == ":method" }?.1 == "POST")
            #expect(block.first { $0.0 == "content-length" }?.1 == String(3 << 20))
            #expect(!block.contains { ["host", "transfer-encoding", "connection"].contains($0.0) })
            #expect(block.allSatisfy { $0.0 == $0.0.lowercased() })
        } catch {
            await upstream.stop()
            throw error
        }
        await upstream.stop()
    }

    @Test func aGETIsOneHEADERSFrameEndingItsStream() async throws {
        let upstream = try await H2Upstream.start(name: "h2")
        do {
            try await ProxyHarness.withProxy(config: Self.h2Catalog(port: upstream.port), singleEventLoop: true) {
                proxy in
                // The first request waits for the connection; the next ones take a stream at once, inside the
                // downstream's read: the head must not leave before the end (an h2 server that answers first resets
                // a stream still open for a body, and NIO closes a connection after 200 resets in 30 s).
                for path in ["/1", "/2", "/3"] {
                    let response = try await proxy.get(path, host: "catalog")
                    #expect(response.status == 200, "\(response.reason ?? "")")
                }
                let client = try await H2Probe.start(port: proxy.outboundPort, method: "GET", path: "/4", reads: true)
                try await eventually { client.finished }
                await client.close()
            }
            #expect(upstream.headersEndedStream == [true, true, true, true])
        } catch {
            await upstream.stop()
            throw error
        }
        await upstream.stop()
    }

    @Test func aClientThatOpensNoWindowHoldsAnH2UpstreamBack() async throws {
        let upstream = try await H2Upstream.start(name: "h2")
        do {
            try await ProxyHarness.withProxy(config: Self.h2Catalog(port: upstream.port)) { proxy in
                // The client stops reading after the head: the proxy's stream toward it fills, the proxy stops
                // taking the upstream's DATA, and leaves the upstream stream's window (1 MiB) closed.
                let client = try await H2Probe.start(
                    port: proxy.outboundPort, method: "GET", path: "/endless", reads: false)
                #expect(try await upstream.endlessHeldBack(), "the proxy read the whole endless response")
                let sent = upstream.endlessSent
                // The two stream windows, the proxy's 64 KiB of unsent DATA, NIO's buffers: far below the 256 MiB.
                #expect(sent < 8 << 20, "upstream wrote \(sent) bytes")
                #expect(client.status == 200)
                await client.close()
            }
        } catch {
            await upstream.stop()
            throw error
        }
        await upstream.stop()
    }

    @Test func anH2UpstreamThatReadsNothingHoldsTheUploadBack() async throws {
        let upstream = try await H2Upstream.start(name: "h2")
        do {
            try await ProxyHarness.withProxy(config: Self.h2Catalog(port: upstream.port)) { proxy in
                let client = try await H2Probe.start(
                    port: proxy.outboundPort, method: "POST", path: "/deaf", reads: true, upload: 256 << 20)
                let sent = try await bytesOnceSettled(limit: 256 << 20) { (client.sentBytes, client.sentBytes > 0) }
                // The upstream's stream window (64 KiB), the proxy's 64 KiB of unsent DATA and its downstream stream
                // window (1 MiB): the rest of the body stays with the client.
                #expect(sent < 8 << 20, "the client sent \(sent) bytes")
                #expect(upstream.connections == 1)
                await client.close()
            }
        } catch {
            await upstream.stop()
            throw error
        }
        await upstream.stop()
    }

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
