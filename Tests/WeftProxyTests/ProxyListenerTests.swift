import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import ProxyConfig
import ServiceLifecycle
import Testing
import WeftProxy

@Suite("weft-proxy HTTP/1.1 data plane")
struct ProxyListenerTests {
    @Test func routesByHostHeader() async throws {
        try await withUpstreams(["a"]) { upstreams in
            let config = TestConfig.config(
                outbound: [TestConfig.service("catalog", routes: [TestConfig.forward(to: "a")])],
                clusters: [TestConfig.cluster("a", ports: [upstreams[0].port])])
            try await ProxyHarness.withProxy(config: config) { proxy in
                for _ in 0..<3 {
                    let response = try await proxy.get("/items?x=1", host: "catalog")
                    #expect(response.status == 200)
                    #expect(response.server == "a")
                    #expect(response.headers.first(name: "x-echo-path") == "/items?x=1")
                    #expect(response.headers.first(name: "x-echo-h-x-forwarded-proto") == "http")
                    #expect(response.headers.first(name: "x-echo-h-traceparent")?.hasPrefix("00-") == true)
                    #expect(response.reason == nil)
                }
                let traced = try await proxy.get(
                    "/", host: "catalog.shop",
                    headers: [("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")])
                #expect(
                    traced.headers.first(name: "x-echo-h-traceparent")
                        == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
            }
        }
    }

    @Test func routesAbsoluteFormLikeAnHTTPProxy() async throws {
        try await withUpstreams(["a"]) { upstreams in
            let config = TestConfig.config(
                outbound: [TestConfig.service("catalog", routes: [TestConfig.forward(to: "a")])],
                clusters: [TestConfig.cluster("a", ports: [upstreams[0].port])])
            try await ProxyHarness.withProxy(config: config) { proxy in
                let response = try await rawExchange(
                    port: proxy.outboundPort,
                    "GET http://catalog.shop/hello?q=2 HTTP/1.1\r\nHost: catalog.shop\r\nConnection: close\r\n\r\n")
                #expect(response.hasPrefix("HTTP/1.1 200 OK\r\n"))
                #expect(response.contains("x-echo-server: a\r\n"))
                #expect(response.contains("x-echo-path: /hello?q=2\r\n"))
                #expect(response.contains("x-echo-h-host: catalog.shop\r\n"))
                #expect(response.contains("connection: close\r\n"))
            }
        }
    }

    /// A route that matches on a header (the proxy hands `RouteTable` the request's headers only when a route
    /// needs them): with the header the request goes to `b`, without it to the catch-all's `a`.
    @Test func routesOnAHeader() async throws {
        try await withUpstreams(["a", "b"]) { upstreams in
            let beta = TestConfig.forward(
                "beta", to: "b",
                matches: [RequestMatch(headers: [NamedMatcher(name: "x-beta", match: .init(.exact, "1"))])])
            let config = TestConfig.config(
                outbound: [TestConfig.service("catalog", routes: [beta, TestConfig.forward(to: "a")])],
                clusters: [
                    TestConfig.cluster("a", ports: [upstreams[0].port]),
                    TestConfig.cluster("b", ports: [upstreams[1].port]),
                ])
            try await ProxyHarness.withProxy(config: config) { proxy in
                let tagged = try await rawExchange(
                    port: proxy.outboundPort,
                    "GET /x HTTP/1.1\r\nHost: catalog\r\nX-Beta: 1\r\nConnection: close\r\n\r\n")
                #expect(tagged.contains("x-echo-server: b\r\n"), "\(tagged)")
                let plain = try await rawExchange(
                    port: proxy.outboundPort, "GET /x HTTP/1.1\r\nHost: catalog\r\nConnection: close\r\n\r\n")
                #expect(plain.contains("x-echo-server: a\r\n"), "\(plain)")
            }
        }
    }

    @Test func malformedRequestsGet400AndClose() async throws {
        let config = TestConfig.config(outbound: [], clusters: [])
        try await ProxyHarness.withProxy(config: config) { proxy in
            let response = try await rawExchange(
                port: proxy.outboundPort, "GET / HTTP/1.1\r\nContent-Length: -4\r\n\r\n")
            #expect(response.hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
            let connect = try await rawExchange(
                port: proxy.outboundPort,
                "CONNECT catalog.shop:80 HTTP/1.1\r\nHost: catalog.shop:80\r\nConnection: close\r\n\r\n")
            #expect(connect.hasPrefix("HTTP/1.1 404 Not Found\r\n"))
            #expect(connect.contains("x-weft-reason: route_not_found\r\n"))
        }
    }

    @Test func weightedSplitFollowsWeights() async throws {
        try await withUpstreams(["v1", "v2"]) { upstreams in
            let route = Route(
                name: "split",
                forward: ForwardAction(backends: [
                    WeightedCluster(cluster: "v1", weight: 90), WeightedCluster(cluster: "v2", weight: 10),
                ]))
            let config = TestConfig.config(
                outbound: [TestConfig.service("reviews", routes: [route])],
                clusters: [
                    TestConfig.cluster("v1", ports: [upstreams[0].port]),
                    TestConfig.cluster("v2", ports: [upstreams[1].port]),
                ])
            try await ProxyHarness.withProxy(config: config) { proxy in
                var v1 = 0
                var v2 = 0
                for _ in 0..<1000 {
                    let response = try await proxy.get("/", host: "reviews")
                    if response.server == "v1" { v1 += 1 } else if response.server == "v2" { v2 += 1 }
                }
                #expect(v1 + v2 == 1000)
                #expect((850...950).contains(v1), "v1 got \(v1) of 1000")
            }
        }
    }

    @Test func headerOperationsAndPathRewrite() async throws {
        try await withUpstreams(["a"]) { upstreams in
            let route = Route(
                name: "api", matches: [RequestMatch(path: StringMatcher(.prefix, "/api"))],
                forward: ForwardAction(
                    backends: [
                        WeightedCluster(
                            cluster: "a", weight: 100,
                            requestHeaders: HeaderOperations(add: [HeaderValue(name: "x-backend", value: "a")]))
                    ],
                    requestHeaders: HeaderOperations(
                        set: [HeaderValue(name: "x-canary", value: "1")], remove: ["x-internal"]),
                    responseHeaders: HeaderOperations(
                        set: [HeaderValue(name: "x-served-by", value: "weft")], remove: ["x-echo-method"]),
                    rewrite: Rewrite(path: "/v2")))
            let config = TestConfig.config(
                outbound: [TestConfig.service("catalog", routes: [route])],
                clusters: [TestConfig.cluster("a", ports: [upstreams[0].port])])
            try await ProxyHarness.withProxy(config: config) { proxy in
                let response = try await proxy.get(
                    "/api/items?id=3", host: "catalog", headers: [("x-internal", "secret"), ("x-canary", "0")])
                #expect(response.status == 200)
                #expect(response.headers.first(name: "x-echo-path") == "/v2/items?id=3")
                #expect(response.headers[canonicalForm: "x-echo-h-x-canary"] == ["1"])
                #expect(response.headers.first(name: "x-echo-h-x-backend") == "a")
                #expect(!response.headers.contains(name: "x-echo-h-x-internal"))
                #expect(response.headers.first(name: "x-served-by") == "weft")
                #expect(!response.headers.contains(name: "x-echo-method"))
                let other = try await proxy.get("/other", host: "catalog")
                #expect(other.status == 404)
                #expect(other.reason == "route_not_found")
            }
        }
    }

    @Test func redirectAndRouteNotFound() async throws {
        let route = Route(
            name: "old", matches: [RequestMatch(path: StringMatcher(.prefix, "/old"))],
            redirect: RedirectAction(path: "/new", authority: "example.com", statusCode: 302))
        let config = TestConfig.config(
            outbound: [TestConfig.service("catalog", routes: [route])], clusters: [])
        try await ProxyHarness.withProxy(config: config) { proxy in
            let redirected = try await proxy.get("/old/page", host: "catalog")
            #expect(redirected.status == 302)
            #expect(redirected.headers.first(name: "location") == "http://example.com/new")
            #expect(redirected.reason == "redirect")
            let missing = try await proxy.get("/", host: "nowhere.example")
            #expect(missing.status == 404)
            #expect(missing.reason == "route_not_found")
        }
    }

    @Test func upstreamFailuresAreExplained() async throws {
        let deadPort = TestUpstream.refusingPort
        try await withUpstreams(["a"]) { upstreams in
            let config = TestConfig.config(
                outbound: [
                    TestConfig.service("dead", routes: [TestConfig.forward(to: "dead")]),
                    TestConfig.service("empty", routes: [TestConfig.forward(to: "empty")]),
                    TestConfig.service("live", routes: [TestConfig.forward(to: "a")]),
                ],
                clusters: [
                    TestConfig.cluster("dead", ports: [deadPort]), TestConfig.cluster("empty", ports: []),
                    TestConfig.cluster("a", ports: [upstreams[0].port]),
                ])
            try await ProxyHarness.withProxy(config: config) { proxy in
                let dead = try await proxy.get("/", host: "dead")
                #expect(dead.status == 503)
                #expect(dead.reason == "upstream_connect_failure")
                let empty = try await proxy.get("/", host: "empty")
                #expect(empty.status == 503)
                #expect(empty.reason == "no_healthy_upstream")
                let reset = try await proxy.get("/reset", host: "live")
                #expect(reset.status == 502)
                #expect(reset.reason == "upstream_reset")
                for _ in 0..<3 {
                    let closing = try await proxy.get("/close", host: "live")
                    #expect(closing.status == 200)
                    #expect(String(buffer: closing.body) == "bye")
                }
                let unavailable = try await proxy.get("/status/503", host: "live")
                #expect(unavailable.status == 503)
                #expect(unavailable.reason == nil)
                #expect(unavailable.server == "a")
            }
        }
    }

    /// Without clocks: a delay is shown by a request it holds past its route timeout (the upstream never sees
    /// it), a timeout by an upstream that never answers (only the timeout can end the request), and a
    /// timeout that does not fire by one far above any scheduling delay.
    @Test func faultsAndTimeout() async throws {
        let silent = try await RawServer.start(.silent)
        try await withUpstreams(["a"]) { upstreams in
            var abort = TestConfig.forward(to: "a")
            abort.forward?.fault = FaultInjection(abort: FaultAbort(percentage: 100, httpStatus: 418))
            var delay = TestConfig.forward(to: "a")
            delay.forward?.fault = FaultInjection(delay: FaultDelay(percentage: 100, delayMs: 200))
            var held = TestConfig.forward(to: "a")
            held.forward?.fault = FaultInjection(delay: FaultDelay(percentage: 100, delayMs: 600_000))
            held.forward?.timeoutMs = 300
            var hung = TestConfig.forward(to: "hung")
            // Long enough for the request to reach the silent upstream first even on a loaded machine (300 ms once
            // ran out before the connection was up, and the upstream saw nothing).
            hung.forward?.timeoutMs = 3000
            var slow = TestConfig.forward(to: "a")
            slow.forward?.timeoutMs = 5000
            let config = TestConfig.config(
                outbound: [
                    TestConfig.service("abort", routes: [abort]), TestConfig.service("delay", routes: [delay]),
                    TestConfig.service("held", routes: [held]), TestConfig.service("hung", routes: [hung]),
                    TestConfig.service("slow", routes: [slow]),
                ],
                clusters: [
                    TestConfig.cluster("a", ports: [upstreams[0].port]),
                    TestConfig.cluster("hung", ports: [silent.port]),
                ])
            try await ProxyHarness.withProxy(config: config) { proxy in
                let aborted = try await proxy.get("/", host: "abort")
                #expect(aborted.status == 418)
                #expect(aborted.reason == "fault")
                #expect(upstreams[0].requestsReceived == 0)

                let delayed = try await proxy.get("/", host: "delay")
                #expect(delayed.status == 200)
                #expect(upstreams[0].requestsReceived == 1)

                // The delay holds the request before it goes upstream: the route timeout ends it first.
                let heldBack = try await proxy.get("/", host: "held")
                #expect(heldBack.status == 504)
                #expect(heldBack.reason == "timeout")
                #expect(upstreams[0].requestsReceived == 1)

                let timedOut = try await proxy.get("/", host: "hung")
                #expect(timedOut.status == 504)
                #expect(timedOut.reason == "timeout")
                #expect(silent.bytesReceived > 0)

                let fast = try await proxy.get("/sleep/10", host: "slow")
                #expect(fast.status == 200)
            }
        }
        await silent.stop()
    }

    @Test func largeBodyStreamsThroughIntact() async throws {
        try await withUpstreams(["a"]) { upstreams in
            let config = TestConfig.config(
                outbound: [TestConfig.service("upload", routes: [TestConfig.forward(to: "a")])],
                clusters: [TestConfig.cluster("a", ports: [upstreams[0].port])])
            try await ProxyHarness.withProxy(config: config) { proxy in
                var body = ByteBuffer()
                var generator = SystemRandomNumberGenerator()
                for _ in 0..<(1 << 17) {
                    body.writeInteger(generator.next() as UInt64)
                }
                #expect(body.readableBytes == 1 << 20)
                let response = try await proxy.get("/upload", host: "upload", method: .POST, body: body)
                #expect(response.status == 200)
                #expect(response.body.readableBytes == 1 << 20)
                #expect(response.body == body)
            }
        }
    }

    @Test func inboundForwardsToTheAppPort() async throws {
        try await withUpstreams(["app", "metrics"]) { upstreams in
            let config = TestConfig.config(
                outbound: [], clusters: [],
                inbound: [
                    InboundPort(port: 8080, protocol: .http1, tls: .disable, appPort: upstreams[0].port),
                    InboundPort(port: 9090, protocol: .http1, tls: .disable, appPort: upstreams[1].port),
                ])
            try await ProxyHarness.withProxy(config: config) { proxy in
                let first = try await proxy.get("/hi", host: "web", port: proxy.inboundPort)
                #expect(first.server == "app", "status \(first.status), reason \(first.reason ?? "none")")
                #expect(first.headers.first(name: "x-echo-path") == "/hi")
                let named = try await proxy.get(
                    "/", host: "web", port: proxy.inboundPort, headers: [("x-weft-inbound-port", "9090")])
                #expect(named.server == "metrics")
                #expect(!named.headers.contains(name: "x-echo-h-x-weft-inbound-port"))
                let unknown = try await proxy.get(
                    "/", host: "web", port: proxy.inboundPort, headers: [("x-weft-inbound-port", "1")])
                #expect(unknown.status == 404)
                #expect(unknown.reason == "inbound_port_not_found")
            }
        }
    }

    @Test func adminEndpoints() async throws {
        try await ProxyHarness.withProxy(config: nil) { proxy in
            let notReady = try await proxy.get("/ready", host: "localhost", port: proxy.adminPort)
            #expect(notReady.status == 503)
            let noConfig = try await proxy.get("/", host: "catalog")
            #expect(noConfig.status == 503)
            #expect(noConfig.reason == "no_config")
            let config = TestConfig.config(outbound: [], clusters: [])
            proxy.store.replace(with: try ProxyState.load(try config.encoded()))
            let ready = try await proxy.get("/ready", host: "localhost", port: proxy.adminPort)
            #expect(ready.status == 200)
            let dump = try await proxy.get("/config_dump", host: "localhost", port: proxy.adminPort)
            #expect(dump.status == 200)
            #expect(String(buffer: dump.body).contains(config.version))
            _ = try await proxy.get("/", host: "catalog")
            let stats = try await proxy.get("/stats", host: "localhost", port: proxy.adminPort)
            let text = String(buffer: stats.body)
            #expect(text.contains("outbound.5xx.no_config: 1"))
            #expect(text.contains("outbound.4xx.route_not_found: 1"))
        }
    }

    @Test func hotReloadAppliesGoodConfigsAndRejectsBadOnes() async throws {
        try await withUpstreams(["a"]) { upstreams in
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
                "weft-proxy-\(UInt64.random(in: 0...UInt64.max))")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let file = directory.appendingPathComponent("config.json")
            let cluster = TestConfig.cluster("a", ports: [upstreams[0].port])
            let first = TestConfig.config(
                outbound: [TestConfig.service("catalog", routes: [TestConfig.forward(to: "a")])], clusters: [cluster])
            try first.encoded().write(to: file, options: .atomic)
            let second = TestConfig.config(
                outbound: [
                    TestConfig.service("catalog", routes: [TestConfig.forward(to: "a")]),
                    TestConfig.service("orders", routes: [TestConfig.forward(to: "a")]),
                ],
                clusters: [cluster])
            try await ProxyHarness.withProxy(config: nil, watching: file.path) { proxy in
                try await eventually { proxy.store.current?.config.version == first.version }
                #expect(try await proxy.get("/", host: "orders").status == 404)

                try second.encoded().write(to: file, options: .atomic)
                try await eventually { try await proxy.get("/", host: "orders").status == 200 }

                // Not JSON: rejected, the previous config keeps serving.
                try Data("{ not json".utf8).write(to: file, options: .atomic)
                try await Task.sleep(for: .milliseconds(300))
                #expect(proxy.store.current?.config.version == second.version)
                #expect(try await proxy.get("/", host: "orders").status == 200)

                // Decodes, but a regex does not compile: rejected too.
                var bad = second
                bad.outbound[0].routes = [
                    Route(
                        name: "bad", matches: [RequestMatch(path: StringMatcher(.regex, "(["))],
                        forward: ForwardAction(backends: [WeightedCluster(cluster: "a", weight: 1)]))
                ]
                try bad.encoded().write(to: file, options: .atomic)
                try await Task.sleep(for: .milliseconds(300))
                #expect(proxy.store.current?.config.version == second.version)
                #expect(try await proxy.get("/", host: "catalog").status == 200)
            }
        }
    }

    @Test func gracefulShutdownLetsInFlightRequestsFinish() async throws {
        try await withUpstreams(["a"]) { upstreams in
            let config = TestConfig.config(
                outbound: [TestConfig.service("catalog", routes: [TestConfig.forward(to: "a")])],
                clusters: [TestConfig.cluster("a", ports: [upstreams[0].port])])
            let store = ProxyStateStore(try ProxyState.load(try config.encoded()))
            let listener = ProxyListener(
                direction: .outbound, port: 0, store: store, metrics: ProxyMetrics(), drainTimeout: .seconds(60),
                logger: .init(label: "test"))
            let group = ServiceGroup(services: [listener], logger: Logger(label: "test"))
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                try await eventually { listener.listeningPort != nil }
                let port = listener.listeningPort ?? 0
                var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/hold")
                request.headers.replaceOrAdd(name: "host", value: "catalog")
                let inFlight = request
                tasks.addTask {
                    let response = try await TestResponse.execute(inFlight, client: testClient, timeout: .seconds(120))
                    #expect(response.status == 200)
                }
                // Shut down once the upstream holds the request; it answers only after the listener has stopped
                // accepting, so the answer comes during the drain whatever the machine's load.
                try await eventually { upstreams[0].heldRequests == 1 }
                await group.triggerGracefulShutdown()
                try await eventually {
                    let probe = "GET / HTTP/1.1\r\nHost: catalog\r\nConnection: close\r\n\r\n"
                    return (try? await rawExchange(port: port, probe)) == nil
                }
                upstreams[0].releaseHeld()
                try await tasks.waitForAll()
            }
        }
    }
}

/// Polls `condition` every 20 ms, 1,500 times (a cap reached only when the test fails); the error names the call.
func eventually(
    file: StaticString = #fileID, line: UInt = #line, _ condition: () async throws -> Bool
) async throws {
    for _ in 0..<1500 {
        if try await condition() {
            return
        }
        try await Task.sleep(for: .milliseconds(20))
    }
    throw HarnessError(message: "condition at \(file):\(line) not met after 1,500 polls 20 ms apart")
}

/// Waits until a flow is held back for good or ran to its end: `look` says how many bytes went so far and whether
/// the flow is stalled now; done after 25 looks in a row find it stalled with no more bytes (buffers fill for a
/// while first), or once `limit` bytes went. Returns the bytes that went.
func bytesOnceSettled(
    limit: Int, file: StaticString = #fileID, line: UInt = #line, _ look: () -> (bytes: Int, stalled: Bool)
) async throws -> Int {
    var steady = 0
    var last = -1
    var bytes = 0
    try await eventually(file: file, line: line) {
        let now = look()
        bytes = now.bytes
        steady = now.stalled && bytes == last ? steady + 1 : 0
        last = bytes
        return steady >= 25 || bytes >= limit
    }
    return bytes
}
