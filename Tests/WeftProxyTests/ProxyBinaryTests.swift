import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import ProxyConfig
import Synchronization
import Testing

/// The `weft-proxy` executable as users run it: flags, config file, Prometheus `/metrics`, SIGTERM drain.
@Suite("weft-proxy executable")
struct ProxyBinaryTests {
    static let binary = packageRoot.appendingPathComponent(".build/debug/weft-proxy").path

    @Test func servesExportsMetricsAndDrainsOnSIGTERM() async throws {
        try await withUpstreams(["a"]) { upstreams in
            try await withProxyBinary(upstreamPort: upstreams[0].port, arguments: ["--drain-timeout", "60"]) { proxy in
                let outbound = proxy.outboundPort
                let admin = proxy.adminPort
                var request = HTTPClientRequest(url: "http://127.0.0.1:\(outbound)/items")
                request.headers.add(name: "host", value: "catalog")
                let response = try await TestResponse.execute(request, client: testClient)
                #expect(response.status == 200)
                #expect(response.server == "a")

                let metrics = try await TestResponse.execute(
                    HTTPClientRequest(url: "http://127.0.0.1:\(admin)/metrics"), client: testClient)
                let text = String(buffer: metrics.body)
                #expect(text.contains("weft_proxy_requests_total{"), "\(text.prefix(2000))")
                #expect(text.contains("destination_service=\"a.shop.svc.cluster.local\""))
                #expect(text.contains("weft_proxy_request_duration_seconds_bucket{"))
                #expect(text.contains("weft_proxy_response_bytes_total{"))

                // A request is in flight when SIGTERM arrives (its upstream holds it): the listener stops accepting
                // while the proxy waits for it; released, it completes, and then the proxy exits cleanly. Nothing
                // here depends on time: the upstream answers only when told to, after the drain has begun.
                var hold = HTTPClientRequest(url: "http://127.0.0.1:\(outbound)/hold")
                hold.headers.add(name: "host", value: "catalog")
                let heldRequest = hold
                async let heldResponse = TestResponse.execute(heldRequest, client: testClient, timeout: .seconds(120))
                try await eventually { upstreams[0].heldRequests == 1 }
                proxy.process.signal(SIGTERM)
                try await eventually {
                    let probe = "GET /items HTTP/1.1\r\nHost: catalog\r\nConnection: close\r\n\r\n"
                    return (try? await rawExchange(port: outbound, probe)) == nil
                }
                #expect(proxy.process.process.isRunning, "the proxy waits for the request in flight")
                upstreams[0].releaseHeld()
                let finished = try await heldResponse
                #expect(finished.status == 200)
                try await eventually { !proxy.process.process.isRunning }
                #expect(proxy.process.process.terminationStatus == 0)
            }
        }
    }

    @Test func aFreshProxyExportsItsSeriesBeforeAnyRequest() async throws {
        let upstreamPort = TestUpstream.refusingPort
        let version = binaryConfig(upstreamPort: upstreamPort).version
        try await withProxyBinary(upstreamPort: upstreamPort) { proxy in
            let metrics = try await TestResponse.execute(
                HTTPClientRequest(url: "http://127.0.0.1:\(proxy.adminPort)/metrics"), client: testClient)
            let text = String(buffer: metrics.body)
            #expect(prometheusValues(text, "weft_proxy_build_info", ["version="]) == [1], "\(text)")
            #expect(prometheusValues(text, "weft_proxy_config_info", ["version=\"\(version)\""]) == [1])
            let loaded = prometheusValues(text, "weft_proxy_config_load_timestamp_seconds", []).first
            #expect((loaded ?? 0) > 1_600_000_000)
            for direction in ["outbound", "inbound"] {
                #expect(prometheusValues(text, "weft_proxy_listeners", ["direction=\"\(direction)\""]) == [1])
                #expect(
                    prometheusValues(text, "weft_proxy_downstream_connections", ["direction=\"\(direction)\""])
                        == [0])
            }
            let requests = prometheusValues(
                text, "weft_proxy_requests_total",
                [
                    "direction=\"outbound\"", "destination_service=\"a.shop.svc.cluster.local\"",
                    "response_class=\"2xx\"", "reason=\"upstream\"",
                ])
            #expect(requests == [0], "\(text)")
        }
    }

    @Test func exportsASpanPerRequestOverOTLP() async throws {
        let collector = try await Collector.start()
        try await withUpstreams(["a"]) { upstreams in
            try await withProxyBinary(
                upstreamPort: upstreams[0].port, arguments: ["--otlp-endpoint", "http://127.0.0.1:\(collector.port)"],
                environment: ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json", "OTEL_BSP_SCHEDULE_DELAY": "100"]
            ) { proxy in
                let outbound = proxy.outboundPort
                var request = HTTPClientRequest(url: "http://127.0.0.1:\(outbound)/items")
                request.headers.add(name: "host", value: "catalog")
                request.headers.add(
                    name: "traceparent", value: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
                let response = try await TestResponse.execute(request, client: testClient)
                #expect(response.status == 200)
                // The upstream sees the same trace, with the proxy's span as its parent.
                let forwarded = response.headers.first(name: "x-echo-h-traceparent") ?? ""
                #expect(forwarded.hasPrefix("00-0af7651916cd43dd8448eb211c80319c-"))
                #expect(!forwarded.contains("b7ad6b7169203331"))
                try await eventually { collector.bodies.contains { $0.contains("outbound a.shop.svc.cluster.local") } }
                let export = collector.bodies.first { $0.contains("outbound a.shop.svc.cluster.local") } ?? ""
                // The span belongs to the client's trace (OTLP/JSON spells IDs in hex, swift-protobuf in base64).
                #expect(
                    export.lowercased().contains("0af7651916cd43dd8448eb211c80319c")
                        || export.contains("CvdlGRbNQ92ESOshHIAxnA=="), "\(export)")
                #expect(export.contains("http.response.status_code"))
                #expect(collector.paths.contains("/v1/traces"))
            }
        }
        await collector.stop()
    }
}

/// The `weft-proxy` executable on free ports, routing `catalog` to `127.0.0.1:upstreamPort`, ready (its admin
/// `/ready` answers 200) for the duration of `body`.
struct ProxyBinary: Sendable {
    let process: BackgroundProcess
    let outboundPort: Int
    let adminPort: Int
}

func withProxyBinary(
    upstreamPort: Int, arguments: [String] = [], environment: [String: String] = [:],
    _ body: @Sendable (ProxyBinary) async throws -> Void
) async throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
        "weft-binary-\(UInt64.random(in: 0...UInt64.max))")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let configPath = directory.appendingPathComponent("config.json").path
    try binaryConfig(upstreamPort: upstreamPort).encoded().write(to: URL(fileURLWithPath: configPath))
    // Ports found free here may be taken by a parallel test before the proxy binds them; the proxy then exits,
    // and the next attempt takes other ports. Readiness is awaited for up to 30 s (a loaded machine starts slowly).
    for attempt in 1...3 {
        let outbound = try await TestUpstream.unusedPort()
        let inbound = try await TestUpstream.unusedPort()
        let admin = try await TestUpstream.unusedPort()
        let process = try await BackgroundProcess.start(
            ProxyBinaryTests.binary,
            [
                "--config", configPath, "--outbound-port", "\(outbound)", "--inbound-port", "\(inbound)",
                "--admin-port", "\(admin)", "--concurrency", "1",
            ] + arguments, waitForLine: false, environment: environment)
        defer { process.stop() }
        var ready = false
        for _ in 0..<1500 where process.process.isRunning {
            let answer = try? await rawExchange(
                port: admin, "GET /ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            if answer?.hasPrefix("HTTP/1.1 200") ?? false {
                ready = true
                break
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        guard ready else {
            if !process.process.isRunning && attempt < 3 { continue }
            throw HarnessError(message: "weft-proxy did not become ready (attempt \(attempt))")
        }
        try await body(ProxyBinary(process: process, outboundPort: outbound, adminPort: admin))
        return
    }
}

/// The config `withProxyBinary` serves: `catalog` to `127.0.0.1:upstreamPort`.
func binaryConfig(upstreamPort: Int) -> ProxyConfig {
    TestConfig.config(
        outbound: [TestConfig.service("catalog", routes: [TestConfig.forward(to: "a")])],
        clusters: [TestConfig.cluster("a", ports: [upstreamPort])])
}

/// The values of the Prometheus text-format samples of `name` whose labels contain every one of `labels`.
func prometheusValues(_ text: String, _ name: String, _ labels: [String]) -> [Double] {
    text.split(separator: "\n").compactMap { line -> Double? in
        guard line.hasPrefix(name + "{") || line.hasPrefix(name + " "), let space = line.lastIndex(of: " ") else {
            return nil
        }
        let series = line[..<space]
        guard labels.allSatisfy({ series.contains($0) }) else {
            return nil
        }
        return Double(line[line.index(after: space)...])
    }
}

/// A stand-in OTLP/HTTP collector: records each POST's path and body, answers `{}`.
final class Collector: Sendable {
    private let channel: any Channel
    private let received = Mutex<[(path: String, body: String)]>([])

    var port: Int { self.channel.localAddress?.port ?? 0 }
    var bodies: [String] { self.received.withLock { $0.map(\.body) } }
    var paths: [String] { self.received.withLock { $0.map(\.path) } }

    private init(channel: any Channel) {
        self.channel = channel
    }

    static func start() async throws -> Collector {
        let box = CollectorBox()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(CollectorHandler(box))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let collector = Collector(channel: channel)
        box.collector.withLock { $0 = collector }
        return collector
    }

    fileprivate func record(path: String, body: String) {
        self.received.withLock { $0.append((path, body)) }
    }

    func stop() async {
        try? await self.channel.close()
    }
}

private final class CollectorBox: Sendable {
    let collector = Mutex<Collector?>(nil)
}

private final class CollectorHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let box: CollectorBox
    private var path = ""
    private var body = ByteBuffer()

    init(_ box: CollectorBox) {
        self.box = box
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.path = head.uri
            self.body.clear()
        case .body(var buffer):
            self.body.writeBuffer(&buffer)
        case .end:
            let text = String(buffer: self.body)
            self.box.collector.withLock { $0?.record(path: self.path, body: text) }
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: "application/json")
            headers.add(name: "content-length", value: "2")
            context.write(
                self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))),
                promise: nil)
            context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: "{}")))), promise: nil)
            context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}

@available(*, unavailable)
extension CollectorHandler: Sendable {}
