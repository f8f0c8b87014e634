import Foundation
import NIOCore
import NIOHTTP1
import ProxyConfig
import Testing
import WeftProxy

@Suite("weft-proxy protocols: h2c, gRPC, WebSocket, TCP")
struct ProxyProtocolTests {
    @Test func h2cPriorKnowledgeFromCurl() async throws {
        try await withUpstreams(["a"]) { upstreams in
            let config = TestConfig.config(
                outbound: [TestConfig.service("catalog", routes: [TestConfig.forward(to: "a")])],
                clusters: [TestConfig.cluster("a", ports: [upstreams[0].port])])
            try await ProxyHarness.withProxy(config: config) { proxy in
                let url = "http://127.0.0.1:\(proxy.outboundPort)/items?x=1"
                // (One request per curl: curl 7.88 fails reusing prior-knowledge h2c connections, against nginx too.)
                let get = try await runProcess([
                    "curl", "-sS", "--http2-prior-knowledge", "-H", "host: catalog", "-D", "-", "-o", "/dev/null", url,
                ])
                #expect(get.status == 0, "\(get.stderr)")
                #expect(get.stdout.hasPrefix("HTTP/2 200"), "\(get.stdout)")
                #expect(get.stdout.contains("x-echo-server: a"))
                #expect(get.stdout.contains("x-echo-path: /items?x=1"))
                let post = try await runProcess([
                    "curl", "-sS", "--http2-prior-knowledge", "-H", "host: catalog", "-d", "hello-h2", url,
                ])
                #expect(post.stdout == "hello-h2", "\(post.stderr)")
                // Many concurrent streams on one connection (h2load: 1 client, 10 streams at a time).
                let load = try await runProcess([
                    "h2load", "-n", "200", "-c", "1", "-m", "10", "-H", "host: catalog", url,
                ])
                #expect(load.stdout.contains("200 succeeded, 0 failed"), "\(load.stdout)")
                let missing = try await runProcess([
                    "curl", "-sS", "--http2-prior-knowledge", "-H", "host: nowhere", "-D", "-",
                    "http://127.0.0.1:\(proxy.outboundPort)/",
                ])
                #expect(missing.stdout.hasPrefix("HTTP/2 404"))
                #expect(missing.stdout.contains("x-weft-reason: route_not_found"))
                #expect(proxy.metrics.requests(.outbound, status: 200, reason: .upstream) == 202)
            }
        }
    }

    @Test func grpcThroughTheProxyEndToEnd() async throws {
        let (server, port) = try await GRPCPeer.server(name: "alpha")
        defer { server.stop() }
        let config = TestConfig.config(
            outbound: [TestConfig.service("echo", protocol: .grpc, routes: [TestConfig.forward(to: "echo")])],
            clusters: [TestConfig.cluster("echo", protocol: .grpc, ports: [port])])
        try await ProxyHarness.withProxy(config: config) { proxy in
            let p = proxy.outboundPort
            let unary = try await GRPCPeer.call(
                port: p, authority: "echo.shop", method: "unary", messages: ["hi"], metadata: ["x-weft-test": "abc"])
            #expect(unary.code == "OK", "\(unary.details); the peer is running: \(server.process.isRunning)")
            #expect(unary.responses == ["alpha:hi"])
            #expect(unary.trailing["x-served-by"] == "alpha")
            #expect(unary.trailing["x-echo-weft-test"] == "abc")
            #expect(unary.initial["x-peer-name"] == "alpha")

            let stream = try await GRPCPeer.call(
                port: p, authority: "echo.shop", method: "server-stream", messages: ["3"])
            #expect(stream.code == "OK", "\(stream.details)")
            #expect(stream.responses == ["alpha:0", "alpha:1", "alpha:2"])

            let client = try await GRPCPeer.call(
                port: p, authority: "echo.shop", method: "client-stream", messages: ["a", "b", "c"])
            #expect(client.responses == ["alpha:a,b,c"])

            let bidi = try await GRPCPeer.call(
                port: p, authority: "echo.shop", method: "bidi", messages: ["x", "y", "z"])
            #expect(bidi.code == "OK")
            #expect(bidi.responses == ["alpha:x", "alpha:y", "alpha:z"])

            // The upstream's status and trailers pass through unchanged.
            let failed = try await GRPCPeer.call(
                port: p, authority: "echo.shop", method: "unary", messages: ["hi"], metadata: ["x-status": "9"])
            #expect(failed.code == "FAILED_PRECONDITION")
            #expect(failed.details == "requested")

            // grpc-timeout (from the client's deadline) bounds the request in the proxy too.
            let late = try await GRPCPeer.call(
                port: p, authority: "echo.shop", method: "unary", messages: ["hi"], timeout: 0.3,
                metadata: ["x-sleep-ms": "3000"])
            #expect(late.code == "DEADLINE_EXCEEDED")

            // The proxy's own answers to gRPC clients are gRPC statuses.
            let unknown = try await GRPCPeer.call(port: p, authority: "nowhere.shop", method: "unary", messages: ["hi"])
            #expect(unknown.code == "UNIMPLEMENTED")
            #expect(unknown.details == "weft: route_not_found")
            #expect(unknown.trailing["x-weft-reason"] == "route_not_found")
        }
    }

    @Test func grpcUpstreamDownMeansUnavailable() async throws {
        let deadPort = TestUpstream.refusingPort
        let config = TestConfig.config(
            outbound: [TestConfig.service("echo", protocol: .grpc, routes: [TestConfig.forward(to: "echo")])],
            clusters: [TestConfig.cluster("echo", protocol: .grpc, ports: [deadPort])])
        try await ProxyHarness.withProxy(config: config) { proxy in
            let down = try await GRPCPeer.call(
                port: proxy.outboundPort, authority: "echo.shop", method: "unary", messages: ["hi"])
            #expect(down.code == "UNAVAILABLE")
            #expect(down.trailing["x-weft-reason"] == "upstream_connect_failure")
        }
    }

    @Test func webSocketUpgradeBecomesATunnel() async throws {
        let server = try await RawServer.start(.upgrade)
        let config = TestConfig.config(
            outbound: [TestConfig.service("chat", routes: [TestConfig.forward(to: "chat")])],
            clusters: [TestConfig.cluster("chat", ports: [server.port])])
        // `echo` is not WebSocket: it becomes a tunnel because the listener allows it.
        let limits = ProxyLimits(upgradeProtocols: ["websocket", "echo"])
        try await ProxyHarness.withProxy(config: config, limits: limits) { proxy in
            let answers = try await rawConversation(
                port: proxy.outboundPort,
                steps: [
                    (
                        "GET /socket HTTP/1.1\r\nHost: chat\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n",
                        "\r\n\r\n"
                    ),
                    ("ping-1", "ping-1"),
                    (String(repeating: "z", count: 100_000) + "END", "END"),
                ])
            #expect(answers.count == 3)
            #expect(answers[0].hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"), "\(answers.first ?? "")")
            #expect(answers[0].lowercased().contains("upgrade: echo\r\n"))
            #expect(answers[0].contains("x-upgraded-by: raw\r\n"))
            #expect(answers[1] == "ping-1")
            #expect(answers[2] == String(repeating: "z", count: 100_000) + "END")
            #expect(proxy.metrics.requests(.outbound, status: 101, reason: .upstream) == 1)
        }
        await server.stop()
    }

    // MARK: Bytes behind a head, while the pipeline is rebuilt

    /// Bytes a client sends right behind a WebSocket handshake, before the `101`: the HTTP/1.1 decoder holds
    /// them and hands them to the tunnel as it leaves. They reach the upstream once the tunnel is up (this
    /// used to trap the process: the upstream's response decoder, not yet gone, took the bytes for a request
    /// part).
    @Test func bytesPipelinedBehindAnUpgradeHeadDoNotCrash() async throws {
        let server = try await RawServer.start(.upgrade)
        let config = TestConfig.config(
            outbound: [TestConfig.service("chat", routes: [TestConfig.forward(to: "chat")])],
            clusters: [TestConfig.cluster("chat", ports: [server.port])])
        try await ProxyHarness.withProxy(config: config) { proxy in
            let answer = try await rawConversation(
                port: proxy.outboundPort,
                steps: [
                    (
                        "GET /socket HTTP/1.1\r\nHost: chat\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nEARLY",
                        "EARLY"
                    ),
                    ("after", "after"),
                ])
            #expect(answer.first?.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n") == true)
            #expect(answer.first?.hasSuffix("\r\n\r\nEARLY") == true, "\(answer)")
            #expect(answer.last == "after")
            // The process is alive, and serves the next connection.
            let again = try await rawConversation(
                port: proxy.outboundPort,
                steps: [
                    (
                        "GET /socket HTTP/1.1\r\nHost: chat\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
                        "\r\n\r\n"
                    )
                ])
            #expect(again.first?.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n") == true)
        }
        await server.stop()
    }

    /// The upstream's first tunnel bytes in the same segment as its `101`: they reach the client after it.
    @Test func bytesBehindTheUpstreamsSwitchingProtocolsReachTheClient() async throws {
        let server = try await RawServer.start(.upgradeGreeting)
        let config = TestConfig.config(
            outbound: [TestConfig.service("chat", routes: [TestConfig.forward(to: "chat")])],
            clusters: [TestConfig.cluster("chat", ports: [server.port])])
        try await ProxyHarness.withProxy(config: config) { proxy in
            let answer = try await rawConversation(
                port: proxy.outboundPort,
                steps: [
                    (
                        "GET /socket HTTP/1.1\r\nHost: chat\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nEARLY",
                        "hello after 101\nEARLY"
                    ),
                    ("ping", "ping"),
                ])
            #expect(answer.first?.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n") == true)
            #expect(answer.first?.hasSuffix("\r\n\r\nhello after 101\nEARLY") == true, "\(answer)")
            #expect(answer.last == "ping")
        }
        await server.stop()
    }

    /// A TCP service `db` whose cluster is `127.0.0.1:port`.
    static func tcpDatabase(port: Int) -> ProxyConfig {
        var database = TestConfig.service("db", routes: [])
        database.protocol = .tcp
        database.tcp = TCPRoute(name: "db", backends: [WeightedCluster(cluster: "db", weight: 100)])
        return TestConfig.config(
            outbound: [database], clusters: [TestConfig.cluster("db", protocol: .tcp, ports: [port])])
    }

    /// Bytes behind a CONNECT head, sent before the `200`: they go through the tunnel once it is up.
    @Test func bytesPipelinedBehindAConnectHeadGoThroughTheTunnel() async throws {
        let echo = try await RawServer.start(.echo)
        let config = Self.tcpDatabase(port: echo.port)
        try await ProxyHarness.withProxy(config: config) { proxy in
            let answers = try await rawConversation(
                port: proxy.outboundPort,
                steps: [
                    ("CONNECT db.shop:80 HTTP/1.1\r\nHost: db.shop:80\r\n\r\nselect 1;", "select 1;"),
                    ("select 2;", "select 2;"),
                ])
            #expect(answers == ["HTTP/1.1 200 Connection Established\r\n\r\nselect 1;", "select 2;"])
        }
        await echo.stop()
    }

    /// An h2c client that writes its preface, SETTINGS, a request's HEADERS and DATA in one segment (what
    /// DownstreamGuard holds while it detects the protocol): all of it reaches the HTTP/2 pipeline.
    @Test func h2cFramesInTheSameSegmentAsThePrefaceAreServed() async throws {
        let upstream = try await TestUpstream.start(name: "catalog")
        let config = TestConfig.config(
            outbound: [TestConfig.service("catalog", routes: [TestConfig.forward(to: "catalog")])],
            clusters: [TestConfig.cluster("catalog", ports: [upstream.port])])
        func frame(type: UInt8, flags: UInt8, stream: UInt8, _ payload: [UInt8]) -> [UInt8] {
            [0, UInt8(payload.count >> 8), UInt8(payload.count & 0xff), type, flags, 0, 0, 0, stream] + payload
        }
        // HPACK: :method POST (static 3), :scheme http (static 6), :path and :authority as literals without
        // indexing on static names 4 and 1.
        let fields: [UInt8] = [0x83, 0x86, 0x04, 2] + Array("/x".utf8) + [0x01, 7] + Array("catalog".utf8)
        let bytes =
            Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + frame(type: 4, flags: 0, stream: 0, [])
            + frame(type: 1, flags: 0x04, stream: 1, fields)
            + frame(type: 0, flags: 0x01, stream: 1, Array("h2-body-in-the-first-segment".utf8))
        try await ProxyHarness.withProxy(config: config) { proxy in
            let answers = try await rawConversation(
                port: proxy.outboundPort, byteSteps: [(bytes, "h2-body-in-the-first-segment")])
            #expect(answers.first?.contains("h2-body-in-the-first-segment") == true)
        }
        await upstream.stop()
    }

    @Test func connectOpensATCPTunnelToTheService() async throws {
        let echo = try await RawServer.start(.echo)
        let config = Self.tcpDatabase(port: echo.port)
        try await ProxyHarness.withProxy(config: config) { proxy in
            let answers = try await rawConversation(
                port: proxy.outboundPort,
                steps: [
                    ("CONNECT db.shop:80 HTTP/1.1\r\nHost: db.shop:80\r\n\r\n", "\r\n\r\n"),
                    ("select 1;", "select 1;"),
                ])
            #expect(answers == ["HTTP/1.1 200 Connection Established\r\n\r\n", "select 1;"])
            let stats = proxy.metrics.renderStats()
            #expect(stats.contains("outbound.tcp.connections: 1"))
            #expect(stats.contains("outbound.tcp.bytes_received: 9"))
            let unknown = try await rawExchange(
                port: proxy.outboundPort,
                "CONNECT nowhere.shop:80 HTTP/1.1\r\nHost: nowhere.shop:80\r\nConnection: close\r\n\r\n")
            #expect(unknown.hasPrefix("HTTP/1.1 404 Not Found\r\n"))
        }
        await echo.stop()
    }

    @Test func inboundTCPPortsAreOpaqueAndServerFirstWorks() async throws {
        let banner = try await RawServer.start(.banner)
        let echo = try await RawServer.start(.echo)
        // A declared TCP port: bytes go through untouched, the server speaks first.
        let tcp = TestConfig.config(
            outbound: [], clusters: [],
            inbound: [InboundPort(port: 3306, protocol: .tcp, tls: .disable, appPort: banner.port)])
        try await ProxyHarness.withProxy(config: tcp) { proxy in
            let answers = try await rawConversation(
                port: proxy.inboundPort, steps: [("", "hello from server\n"), ("GET / HTTP/1.1\r\n\r\n", "\r\n\r\n")])
            #expect(answers == ["hello from server\n", "GET / HTTP/1.1\r\n\r\n"])
            #expect(proxy.metrics.renderStats().contains("inbound.tcp.connections: 1"))
        }
        // An undeclared (`detect`) port: a silent client is handed to TCP after the detect timeout, so a
        // server-first protocol still works; a client that speaks first and is not HTTP goes through as TCP.
        let detect = TestConfig.config(
            outbound: [], clusters: [],
            inbound: [InboundPort(port: 3306, protocol: .detect, tls: .disable, appPort: banner.port)])
        try await ProxyHarness.withProxy(config: detect, limits: ProxyLimits(detectTimeout: .milliseconds(100))) {
            proxy in
            let answers = try await rawConversation(port: proxy.inboundPort, steps: [("", "hello from server\n")])
            #expect(answers == ["hello from server\n"])
        }
        let detectEcho = TestConfig.config(
            outbound: [], clusters: [],
            inbound: [InboundPort(port: 5000, protocol: .detect, tls: .disable, appPort: echo.port)])
        try await ProxyHarness.withProxy(config: detectEcho) { proxy in
            // A TLS ClientHello's first bytes: not HTTP, so opaque TCP to the app.
            let hello = "\u{16}\u{03}\u{01}hello"
            let answers = try await rawConversation(port: proxy.inboundPort, steps: [(hello, "hello")])
            #expect(answers == [hello])
        }
        await banner.stop()
        await echo.stop()
    }
}
