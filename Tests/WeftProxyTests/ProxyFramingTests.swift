import Foundation
import NIOCore
import NIOHTTP1
import ProxyConfig
import Testing
import WeftProxy

/// Message framing and hop-by-hop handling, checked on the wire: a raw-socket upstream (`RawRecorder`) parses
/// every byte the proxy sends and must see exactly one well-framed request per client request.
@Suite("weft-proxy framing: h2 to HTTP/1.1, hop-by-hop fields, upgrades, 100-continue, limits, idle")
struct ProxyFramingTests {
    /// The service `catalog` forwarding to one HTTP/1.1 upstream on 127.0.0.1:`port` (also the smuggling tests').
    /// `catalog` to `recorder`, on the recorder's own address.
    static func catalog(_ recorder: RawRecorder) -> ProxyConfig {
        Self.catalog(port: recorder.port, address: recorder.host)
    }

    static func catalog(port: Int, address: String = "127.0.0.1", protocol: AppProtocol = .http1) -> ProxyConfig {
        TestConfig.config(
            outbound: [TestConfig.service("catalog", routes: [TestConfig.forward(to: "a")])],
            clusters: [TestConfig.cluster("a", protocol: `protocol`, ports: [port], address: address)])
    }

    // MARK: Item 1: h2c client, HTTP/1.1 upstream

    @Test func h2cRequestsReachAnHTTP1UpstreamExplicitlyFramed() async throws {
        let recorder = try await RawRecorder.start()
        // One event loop: every request shares the same pooled upstream connection.
        try await ProxyHarness.withProxy(
            config: Self.catalog(recorder), singleEventLoop: true
        ) { proxy in
            let smuggled = "GET /smuggled HTTP/1.1\r\nHost: catalog\r\n\r\n"
            let responses = try await h2Exchange(
                port: proxy.outboundPort,
                [
                    H2Request(path: "/get-with-body", authority: "catalog", data: [smuggled]),
                    H2Request(path: "/get-no-body", authority: "catalog"),
                    H2Request(method: "DELETE", path: "/delete-with-body", authority: "catalog", data: ["a", "bc"]),
                    H2Request(
                        method: "POST", path: "/post-length", authority: "catalog",
                        headers: [("content-length", "5")], data: ["hello"]),
                    H2Request(method: "POST", path: "/post-empty", authority: "catalog"),
                    H2Request(method: "TRACE", path: "/trace", authority: "catalog", data: ["secret"]),
                ])
            // And an HTTP/1.1 client after them, on the same pooled connection.
            let last = try await proxy.get("/last", host: "catalog")
            #expect(last.status == 200)
            #expect(responses.map(\.status) == [200, 200, 200, 200, 200, 200])
            #expect(responses.first?.body == "GET /get-with-body \(smuggled.utf8.count)")
            let requests = recorder.requests
            #expect(
                requests.map(\.target) == [
                    "/get-with-body", "/get-no-body", "/delete-with-body", "/post-length", "/post-empty", "/trace",
                    "/last",
                ], "\(requests)")
            #expect(recorder.problems.isEmpty, "\(recorder.problems)")
            guard requests.count == 7 else {
                return
            }
            #expect(requests[0].framing == "chunked")
            #expect(requests[0].body == smuggled)
            #expect(requests[1].framing == "none")
            #expect(requests[2].framing == "chunked")
            #expect(requests[2].body == "abc")
            #expect(requests[3].framing == "content-length")
            #expect(requests[3].body == "hello")
            #expect(requests[4].header("content-length") == "0")
            // TRACE must not have a body: none is sent.
            #expect(requests[5].framing == "none")
            #expect(requests[5].body == "")
            #expect(requests[6].framing == "none")
            #expect(Set(requests.map(\.connection)).count == 1)
        }
        await recorder.stop()
    }

    @Test func http1TransferCodingsOtherThanChunkedAreRefused() async throws {
        let recorder = try await RawRecorder.start()
        try await ProxyHarness.withProxy(config: Self.catalog(recorder)) { proxy in
            let chunked = try await rawExchange(
                port: proxy.outboundPort,
                "GET /chunked HTTP/1.1\r\nHost: catalog\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                    + "5\r\nhello\r\n0\r\n\r\n")
            #expect(chunked.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(chunked)")
            let listed = try await rawExchange(
                port: proxy.outboundPort,
                "GET /listed HTTP/1.1\r\nHost: catalog\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n"
                    + "5\r\nhello\r\n0\r\n\r\n")
            #expect(
                listed.hasPrefix("HTTP/1.1 501 Not Implemented\r\n") || listed.hasPrefix("HTTP/1.1 400"), "\(listed)")
            #expect(recorder.requests.map(\.target) == ["/chunked"])
            #expect(recorder.requests.first?.framing == "chunked")
            #expect(recorder.requests.first?.body == "hello")
            #expect(recorder.problems.isEmpty, "\(recorder.problems)")
        }
        await recorder.stop()
    }

    // MARK: Items 3 and 4: hop-by-hop fields and upgrades

    @Test func hopByHopFieldsIncludingThoseNamedInConnectionStayOnTheirHop() async throws {
        let recorder = try await RawRecorder.start { _ in
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nConnection: x-internal\r\nx-internal: 1\r\nKeep-Alive: timeout=5\r\n"
                + "Proxy-Connection: keep-alive\r\nx-public: yes\r\n\r\nok"
        }
        try await ProxyHarness.withProxy(config: Self.catalog(recorder)) { proxy in
            let answers = try await rawConversation(
                port: proxy.outboundPort,
                steps: [
                    (
                        "GET /one HTTP/1.1\r\nHost: catalog\r\nConnection: x-secret, keep-alive\r\nX-Secret: 1\r\n"
                            + "Keep-Alive: timeout=5\r\nTE: trailers, deflate;q=0.5\r\nX-Kept: yes\r\n\r\n", "ok"
                    ),
                    ("GET /two HTTP/1.1\r\nHost: catalog\r\nTE: deflate\r\nTrailer: x-t\r\n\r\n", "ok"),
                ])
            #expect(answers.count == 2)
            let response = answers.first?.lowercased() ?? ""
            #expect(response.hasPrefix("http/1.1 200 ok\r\n"))
            #expect(response.contains("x-public: yes\r\n"))
            #expect(!response.contains("x-internal"), "\(response)")
            #expect(!response.contains("keep-alive: timeout"), "\(response)")
            #expect(!response.contains("proxy-connection"), "\(response)")
            let requests = recorder.requests
            #expect(requests.count == 2)
            guard requests.count == 2 else {
                return
            }
            #expect(!requests[0].has("x-secret"))
            #expect(!requests[0].has("keep-alive"))
            #expect(!requests[0].has("connection"))
            #expect(requests[0].header("te") == "trailers")
            #expect(requests[0].header("x-kept") == "yes")
            #expect(!requests[1].has("te"))
            #expect(recorder.problems.isEmpty, "\(recorder.problems)")
        }
        await recorder.stop()
    }

    @Test func h2cUpgradeIsStrippedAndNothingAfterItBypassesRouting() async throws {
        let recorder = try await RawRecorder.start()
        try await ProxyHarness.withProxy(config: Self.catalog(recorder)) { proxy in
            // An h2c upgrade with a second request right behind it: the upgrade goes as a plain request, its
            // response closes the connection, and the bytes after it are never forwarded anywhere.
            let answer = try await rawExchange(
                port: proxy.outboundPort,
                "GET /up HTTP/1.1\r\nHost: catalog\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                    + "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\nGET /after HTTP/1.1\r\nHost: catalog\r\n\r\n")
            #expect(answer.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(answer)")
            #expect(answer.hasSuffix("GET /up 0"), "\(answer)")
            #expect(answer.contains("connection: close\r\n"))
            let request = recorder.requests.first
            #expect(recorder.requests.map(\.target) == ["/up"])
            #expect(request?.has("upgrade") == false)
            #expect(request?.has("http2-settings") == false)
            #expect(request?.has("connection") == false)
            #expect(recorder.problems.isEmpty, "\(recorder.problems)")
        }
        await recorder.stop()
    }

    @Test func onlyAllowedUpgradesBecomeTunnels() async throws {
        let server = try await RawServer.start(.upgrade)
        try await ProxyHarness.withProxy(config: Self.catalog(port: server.port)) { proxy in
            // The upstream switches protocols whatever it is asked: an h2c upgrade it was never sent is refused.
            let h2c = try await rawExchange(
                port: proxy.outboundPort,
                "GET /up HTTP/1.1\r\nHost: catalog\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                    + "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\nPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            #expect(h2c.hasPrefix("HTTP/1.1 502 Bad Gateway\r\n"), "\(h2c)")
            let websocket = try await rawConversation(
                port: proxy.outboundPort,
                steps: [
                    (
                        "GET /socket HTTP/1.1\r\nHost: catalog\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                            + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
                        "\r\n\r\n"
                    ),
                    ("ping", "ping"),
                ])
            #expect(websocket.first?.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n") == true, "\(websocket)")
            #expect(websocket.last == "ping")
        }
        await server.stop()
    }

    // MARK: Item 5: Expect: 100-continue

    @Test func expect100ContinueIsAnsweredSoUploadsStartAtOnce() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "weft-expect-\(UInt64.random(in: 0...UInt64.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        // curl 7.88 sends `Expect: 100-continue` on its own for bodies over 1 MiB.
        let file = directory.appendingPathComponent("body").path
        try Data(repeating: UInt8(ascii: "x"), count: 2_000_000).write(to: URL(fileURLWithPath: file))
        try await withUpstreams(["a"]) { upstreams in
            try await ProxyHarness.withProxy(config: Self.catalog(port: upstreams[0].port)) { proxy in
                // curl sends the body only after a 100 (or after its expect timer): with the timer at 60 s, past
                // curl's own 20 s limit, the upload completes only if a 100 arrives.
                let result = try await runProcess(
                    [
                        "curl", "-sS", "--expect100-timeout", "60", "--max-time", "20", "-H", "host: catalog",
                        "--data-binary", "@\(file)", "-D", "-", "-o", "/dev/null", "-w", "uploaded=%{size_upload}",
                        "http://127.0.0.1:\(proxy.outboundPort)/upload",
                    ], timeout: .seconds(30))
                #expect(result.status == 0, "\(result.stderr)")
                #expect(result.stdout.hasPrefix("HTTP/1.1 100 Continue\r\n"), "\(result.stdout)")
                #expect(result.stdout.contains("HTTP/1.1 200 OK\r\n"))
                #expect(result.stdout.contains("uploaded=2000000"))
                // The proxy answered the expectation: it is not forwarded.
                #expect(!result.stdout.lowercased().contains("x-echo-h-expect"))
            }
        }
    }

    // MARK: Item 6: limits while parsing, idle keep-alive connections

    @Test func headerLimitsApplyWhileTheHeadIsStillArriving() async throws {
        let recorder = try await RawRecorder.start { _ in
            var response = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n"
            for index in 0..<150 {
                response += "x-u-\(index): v\r\n"
            }
            return response + "\r\nok"
        }
        let limits = ProxyLimits(headerTimeout: .seconds(60))
        try await ProxyHarness.withProxy(
            config: Self.catalog(recorder), limits: limits
        ) { proxy in
            // Heads that never end: the answer comes from the limit, long before the header timeout.
            var many = "GET / HTTP/1.1\r\nHost: catalog\r\n"
            for index in 0..<150 {
                many += "x-h-\(index): v\r\n"
            }
            let tooMany = try await rawExchange(port: proxy.outboundPort, many)
            #expect(tooMany.hasPrefix("HTTP/1.1 431 Request Header Fields Too Large\r\n"), "\(tooMany.prefix(200))")
            let big = "GET / HTTP/1.1\r\nHost: catalog\r\nx-big: " + String(repeating: "a", count: 70_000) + "\r\n"
            let tooBig = try await rawExchange(port: proxy.outboundPort, big)
            #expect(tooBig.hasPrefix("HTTP/1.1 431 Request Header Fields Too Large\r\n"), "\(tooBig.prefix(200))")
            // An upstream response head over the limits is not passed on.
            let response = try await proxy.get("/", host: "catalog")
            #expect(response.status == 502)
            #expect(response.reason == "upstream_reset")
        }
        await recorder.stop()
    }

    @Test func idleKeepAliveConnectionsCloseAfterTheIdleTimeout() async throws {
        try await withUpstreams(["a"]) { upstreams in
            let limits = ProxyLimits(idleTimeout: .milliseconds(300))
            try await ProxyHarness.withProxy(config: Self.catalog(port: upstreams[0].port), limits: limits) { proxy in
                // A request that takes longer than the idle timeout is not cut: the timer runs only between requests.
                let answers = try await rawConversation(
                    port: proxy.outboundPort,
                    steps: [
                        ("GET /sleep/900 HTTP/1.1\r\nHost: catalog\r\n\r\n", "content-length: 0\r\n\r\n"),
                        // Then nothing: the proxy closes the connection (the step ends at EOF).
                        ("", "never sent"),
                    ])
                #expect(answers.first?.hasPrefix("HTTP/1.1 200 OK\r\n") == true, "\(answers)")
                #expect(answers.last == "")
            }
        }
    }
}
