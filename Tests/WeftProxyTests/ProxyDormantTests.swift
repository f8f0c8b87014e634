import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOPosix
import ProxyConfig
import Testing

@testable import WeftProxy

/// Issue 11 item 3: an idle HTTP/1.1 keep-alive connection drops its HTTP handlers (`ProxyLimits.dormantAfter`)
/// and gets them back with its next byte, without losing a byte of a pipelined request. Raw sockets on
/// 127.0.0.1, one event loop (timers fire in deadline order); every wait is bounded.
@Suite("weft-proxy dormant keep-alive connections")
struct ProxyDormantTests {
    private static func catalog(port: Int) -> ProxyConfig {
        TestConfig.config(
            outbound: [TestConfig.service("catalog", routes: [TestConfig.forward(to: "a")])],
            clusters: [TestConfig.cluster("a", ports: [port])])
    }

    /// A proxy on one event loop (its timers fire in deadline order) routing `catalog` to `upstream`.
    private static func withProxy(
        to upstream: TestUpstream, limits: ProxyLimits, _ body: @Sendable (ProxyHarness) async throws -> Void
    ) async throws {
        try await ProxyHarness.withProxy(
            config: Self.catalog(port: upstream.port), singleEventLoop: true, limits: limits, body)
    }

    private static func dormant(_ proxy: ProxyHarness) -> Int {
        let line = proxy.metrics.renderStats().split(separator: "\n").first { $0.hasPrefix("outbound.http1.dormant: ") }
        return line.flatMap { Int($0.dropFirst("outbound.http1.dormant: ".count)) } ?? -1
    }

    /// The end of the test upstream's chunked echo.
    private static let end = "0\r\n\r\n"

    @Test func anIdleConnectionShedsItsHandlersAndServesItsNextRequest() async throws {
        try await withUpstreams(["a"]) { upstreams in
            try await Self.withProxy(to: upstreams[0], limits: ProxyLimits(dormantAfter: .milliseconds(50))) { proxy in
                try await RawSession.with(port: proxy.outboundPort) { session in
                    let first = try await session.exchange(
                        "GET /one HTTP/1.1\r\nHost: catalog\r\n\r\n", until: Self.end)
                    #expect(first.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(first)")
                    try await eventually { Self.dormant(proxy) == 1 }
                    // The next request wakes it, in two pieces (the first wakes the handlers, the second completes
                    // the head), with a body.
                    try await session.send("POST /two HTTP/1.1\r\nHo")
                    let second = try await session.exchange(
                        "st: catalog\r\nContent-Length: 5\r\n\r\nhello", until: Self.end)
                    #expect(second.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(second)")
                    #expect(second.contains("hello"), "\(second)")
                    try await eventually { Self.dormant(proxy) == 2 }
                    let third = try await session.exchange(
                        "GET /three HTTP/1.1\r\nHost: catalog\r\n\r\n", until: Self.end)
                    #expect(third.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(third)")
                }
                #expect(upstreams[0].requestsReceived == 3)
            }
        }
    }

    @Test func aPipelinedHalfRequestKeepsTheDecoder() async throws {
        try await withUpstreams(["a"]) { upstreams in
            try await Self.withProxy(to: upstreams[0], limits: ProxyLimits(dormantAfter: .milliseconds(50))) { proxy in
                try await RawSession.with(port: proxy.outboundPort) { pipelined in
                    // A complete request and part of the next one's head in one write: that part lives in the
                    // decoder's parser state only, so this connection must not shed its decoder.
                    let first = try await pipelined.exchange(
                        "GET /one HTTP/1.1\r\nHost: catalog\r\n\r\nPOST /two HTTP/1.1\r\nHost: cat", until: Self.end)
                    #expect(first.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(first)")
                    // A second connection's request ends later: its shedding (timers fire in deadline order on the
                    // one event loop) comes after the moment the first connection would have shed.
                    try await RawSession.with(port: proxy.outboundPort) { control in
                        let answer = try await control.exchange(
                            "GET /control HTTP/1.1\r\nHost: catalog\r\n\r\n", until: Self.end)
                        #expect(answer.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(answer)")
                        try await eventually { Self.dormant(proxy) >= 1 }
                    }
                    let second = try await pipelined.exchange(
                        "alog\r\nContent-Length: 5\r\n\r\nhello", until: Self.end)
                    #expect(second.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(second)")
                    #expect(second.contains("hello"), "\(second)")
                }
                #expect(upstreams[0].requestsReceived == 3)
            }
        }
    }

    @Test func aDormantConnectionKeepsItsIdleAndHeaderTimeouts() async throws {
        try await withUpstreams(["a"]) { upstreams in
            try await Self.withProxy(
                to: upstreams[0],
                limits: ProxyLimits(
                    headerTimeout: .seconds(10), idleTimeout: .seconds(60), dormantAfter: .milliseconds(50))
            ) { proxy in
                // Woken by half a head, which then stalls: 408 once the header timeout passes. The timeout also
                // bounds the wait for a new connection's first byte, so it is the default 10 s: at 200 ms, and
                // once at 3 s, a loaded full run lost the connection before the test wrote its first request.
                try await RawSession.with(port: proxy.outboundPort) { session in
                    _ = try await session.exchange("GET /one HTTP/1.1\r\nHost: catalog\r\n\r\n", until: Self.end)
                    try await eventually { Self.dormant(proxy) == 1 }
                    let answer = try await session.exchange("GET /slow HTTP/1.1\r\n", until: "header_timeout\n")
                    #expect(answer.hasPrefix("HTTP/1.1 408 Request Timeout\r\n"), "\(answer)")
                    await session.waitClosed()
                }
            }
            try await Self.withProxy(
                to: upstreams[0],
                limits: ProxyLimits(
                    headerTimeout: .seconds(60), idleTimeout: .milliseconds(300), dormantAfter: .milliseconds(50))
            ) { proxy in
                // Dormant, then closed when the idle timeout passes.
                try await RawSession.with(port: proxy.outboundPort) { session in
                    _ = try await session.exchange("GET /one HTTP/1.1\r\nHost: catalog\r\n\r\n", until: Self.end)
                    try await eventually { Self.dormant(proxy) == 1 }
                    await session.waitClosed()
                }
            }
        }
    }
}

@Suite("weft-proxy dormant connections: the decoder knows when it is between requests")
struct DecoderBoundaryTests {
    /// Whether the decoder is idle after each of `pieces` is read.
    private static func idleAfter(_ pieces: String...) throws -> [Bool] {
        let decoder = HTTP1RequestDecoder(limits: NIOHTTPDecoderLimitConfiguration())
        let channel = EmbeddedChannel(handler: decoder)
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        var idle: [Bool] = []
        for piece in pieces {
            _ = try? channel.writeInbound(ByteBuffer(string: piece))
            while try channel.readInbound(as: HTTPServerRequestPart.self) != nil {}
            idle.append(decoder.isIdle)
        }
        return idle
    }

    @Test func requestsThatEndWithTheirBytesLeaveItIdle() throws {
        #expect(
            try Self.idleAfter(
                "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
                // A head split inside its CRLF CRLF, then a body over two reads.
                "POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r", "\nhello", "world",
                // Chunked, after empty lines.
                "\r\nPOST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                // Two pipelined requests in one read.
                "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
                == [true, false, false, true, true, true])
    }

    @Test func aPartOfTheNextRequestOrARefusedOneDoesNot() throws {
        #expect(
            try Self.idleAfter("GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /next HT", "TP/1.1\r\nHost: a\r\n\r\n")
                == [false, true])
        #expect(try Self.idleAfter("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nokGET") == [false])
        #expect(try Self.idleAfter("GET / HTTP/1.1\nHost: a\r\n\r\n") == [false])
    }
}

/// One raw TCP connection a test drives step by step; `with` bounds the whole conversation (60 s, a hang guard).
final class RawSession {
    private let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    private var iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator

    private init(
        outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>,
        iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    ) {
        self.outbound = outbound
        self.iterator = iterator
    }

    static func with(port: Int, _ body: @escaping @Sendable (RawSession) async throws -> Void) async throws {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await channel.executeThenClose { inbound, outbound in
                    try await body(RawSession(outbound: outbound, iterator: inbound.makeAsyncIterator()))
                }
            }
            group.addTask {
                try await Task.sleep(for: .seconds(60))
                throw HarnessError(message: "raw session still running after 60 s")
            }
            defer { group.cancelAll() }
            try await group.next()
        }
    }

    func send(_ bytes: String) async throws {
        try await self.outbound.write(ByteBuffer(string: bytes))
    }

    /// Sends `bytes`, then reads until what arrived contains `marker` (or the connection ends).
    func exchange(_ bytes: String, until marker: String) async throws -> String {
        try await self.send(bytes)
        var received = ""
        while !received.contains(marker), let buffer = try await self.iterator.next() {
            received += String(buffer: buffer)
        }
        return received
    }

    func send(_ buffer: ByteBuffer) async throws {
        try await self.outbound.write(buffer)
    }

    /// Reads an HTTP/1.1 response until the peer closes: its head, and how many bytes followed the head (counted,
    /// not kept).
    func responseToEnd() async throws -> (head: String, bodyBytes: Int) {
        var head: [UInt8] = []
        var body = 0
        var inBody = false
        while let buffer = try await self.iterator.next() {
            if inBody {
                body += buffer.readableBytes
                continue
            }
            head += buffer.readableBytesView
            if let end = head.firstRange(of: Array("\r\n\r\n".utf8)) {
                body += head.count - end.upperBound
                head.removeSubrange(end.upperBound...)
                inBody = true
            }
        }
        return (String(decoding: head, as: UTF8.self), body)
    }

    /// What arrives until the peer closes (or resets).
    func readToEnd() async throws -> String {
        var received = ""
        do {
            while let buffer = try await self.iterator.next() {
                received += String(buffer: buffer)
            }
        } catch {}
        return received
    }

    /// Reads until the peer closes (a reset counts as closed).
    func waitClosed() async {
        do {
            while try await self.iterator.next() != nil {}
        } catch {}
    }
}
