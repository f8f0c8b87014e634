import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import ProxyConfig
import Synchronization
import Testing

@testable import WeftProxy

#if canImport(Glibc)
    import Glibc
#endif

/// The downstream HTTP/2 connection (`HTTP2ServerConnection`, which runs the streams without a channel each):
/// flow control both ways (a client that opens no window holds the upstream back; an upstream that reads nothing
/// holds the client's upload back, the proxy reopening the window only for what it passed on), a body larger than
/// every window through both legs intact, and draining (GOAWAY, the stream in flight finishes). Loopback only;
/// every wait is bounded.
@Suite("weft-proxy downstream HTTP/2: flow control and draining")
struct ProxyHTTP2DownstreamTests {
    private static func catalog(port: Int) -> ProxyConfig {
        TestConfig.config(
            outbound: [TestConfig.service("catalog", routes: [TestConfig.forward(to: "a")])],
            clusters: [TestConfig.cluster("a", ports: [port])])
    }

    @Test func aClientThatOpensNoWindowHoldsTheUpstreamBack() async throws {
        let upstream = try await EndlessResponder.start()
        do {
            try await ProxyHarness.withProxy(config: Self.catalog(port: upstream.port)) { proxy in
                // The stream stops reading after the response head: its 65,535-byte window is never reopened.
                let client = try await H2Probe.start(
                    port: proxy.outboundPort, method: "GET", path: "/endless", reads: false)
                #expect(try await upstream.heldBack(), "the proxy read the whole endless response")
                let sent = upstream.sentBytes
                // Loopback socket buffers between the upstream and the proxy hold a few MiB; the proxy itself at
                // most 64 KiB per stream beyond the client's window.
                #expect(sent < 48 << 20, "upstream sent \(sent) bytes")
                #expect(client.status == 200)
                await client.close()
            }
        } catch {
            await upstream.stop()
            throw error
        }
        await upstream.stop()
    }

    @Test func anUpstreamThatReadsNothingHoldsTheUploadBack() async throws {
        let upstream = try await DeafUpstream.start()
        do {
            try await ProxyHarness.withProxy(config: Self.catalog(port: upstream.port)) { proxy in
                let client = try await H2Probe.start(
                    port: proxy.outboundPort, method: "POST", path: "/upload", reads: true, upload: 256 << 20)
                let sent = try await bytesOnceSettled(limit: 256 << 20) { (client.sentBytes, client.sentBytes > 0) }
                // The proxy's stream window (1 MiB) plus the socket buffers between it and the upstream: the rest
                // of the body stays with the client.
                #expect(sent < 48 << 20, "the client sent \(sent) bytes")
                #expect(upstream.connections == 1)
                await client.close()
            }
        } catch {
            await upstream.stop()
            throw error
        }
        await upstream.stop()
    }

    @Test func aBodyLargerThanEveryWindowCrossesBothWaysIntact() async throws {
        try await withUpstreams(["a"]) { upstreams in
            try await ProxyHarness.withProxy(config: Self.catalog(port: upstreams[0].port)) { proxy in
                // 3 MiB up (the proxy's stream window is 1 MiB: it must reopen it) and the echo back down (the
                // client's window is 64 KiB: the proxy must wait for it, then go on).
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
        }
    }

    @Test func drainingSendsGoAwayAndTheStreamInFlightFinishes() async throws {
        try await withUpstreams(["a"]) { upstreams in
            try await withProxyBinary(upstreamPort: upstreams[0].port, arguments: ["--drain-timeout", "120"]) {
                proxy in
                let client = try await H2Probe.start(
                    port: proxy.outboundPort, method: "GET", path: "/hold", reads: true)
                try await eventually { upstreams[0].heldRequests == 1 }
                proxy.process.signal(SIGTERM)
                try await eventually { client.goAway != nil }
                #expect(client.goAway == 1, "GOAWAY names the stream in flight as the last one taken")
                #expect(!client.finished)
                upstreams[0].releaseHeld()
                try await eventually { client.finished && client.connectionClosed }
                #expect(client.status == 200)
                try await eventually { !proxy.process.process.isRunning }
                #expect(proxy.process.process.terminationStatus == 0)
            }
        }
    }
}

/// `ConnectionInboundWindow`: the connection's window is reopened for DATA the handlers took, never for DATA that
/// waits in a held stream; what waits, together with what is open, never exceeds the target.
@Suite("downstream HTTP/2: the connection's inbound window")
struct ConnectionInboundWindowTests {
    @Test("taken DATA reopens the window to its target once half is used; an update's own report reopens nothing")
    func reopensForTakenData() {
        var window = ConnectionInboundWindow(target: 100)
        // Before the first report the window is the client's initial one: nothing to send.
        #expect(window.released(0) == nil)
        #expect(window.sized(60) == nil)
        #expect(window.sized(50) == 50)
        // NIOHTTP2Handler reports the size the update made.
        #expect(window.sized(100) == nil)
    }

    @Test("waiting DATA is not reopened until its stream's handler takes it or the stream drops it")
    func waitingDataHoldsItsShare() {
        var window = ConnectionInboundWindow(target: 100)
        // 60 bytes arrive for a held stream (parked before the size is reported, as NIOHTTP2Handler orders it).
        window.parked(60)
        #expect(window.sized(40) == nil, "40 open and 60 waiting: nothing to reopen")
        // 30 more arrive and are taken at once: 10 open, 60 waiting, 30 taken.
        #expect(window.sized(10) == 30, "reopened for the 30 taken (half of the 40 not waiting), not the 60")
        #expect(window.waiting == 60)
        // The held stream's handler takes its 60: all of it is reopened.
        #expect(window.released(60) == 60)
        #expect(window.waiting == 0)
        #expect(window.sized(100) == nil)
    }

    @Test("whatever the order of events: open and waiting bytes never exceed the target, taken bytes come back")
    func boundedAndNeverStuck() {
        var generator = HTTP2RequestBlockTests.Generator(state: 0x5EED_0003)
        let target = 1 << 16
        var window = ConnectionInboundWindow(target: target)
        // What the client may still send, and what waits in held streams.
        var open = 65_535
        var waiting = 0
        for _ in 0..<5_000 {
            if generator.below(2) == 0, open > 0 {
                // DATA arrives; some of it waits in a held stream.
                let size = generator.below(min(open, 16_384)) + 1
                let parked = generator.below(size + 1)
                open -= size
                waiting += parked
                window.parked(parked)
            } else if waiting > 0 {
                // A held stream's handler takes some, or the stream is dropped.
                let size = generator.below(waiting) + 1
                waiting -= size
                open += window.released(size) ?? 0
            }
            // NIOHTTP2Handler reports the window's size after every change.
            open += window.sized(open) ?? 0
            #expect(open + waiting <= target)
            // Taken bytes come back: at least half of what does not wait is open.
            #expect(open * 2 >= target - waiting, "the window is stuck: \(open) open, \(waiting) waiting")
            #expect(window.waiting == waiting)
        }
    }
}

// MARK: - A client stream the test drives

/// One h2c (prior knowledge) request on its own connection: a body of `upload` bytes (a fixed pattern) written as
/// fast as the stream's flow control allows, and the response read (or, with `reads: false`, never read: the
/// stream channel does not read, so the client never reopens its 65,535-byte window).
final class H2Probe: Sendable {
    private let channel: any Channel
    private let box: H2ProbeBox

    struct State {
        var status = 0
        var sent = 0
        var received = 0
        var intact = true
        var finished = false
        var goAway: Int?
        var closed = false
    }

    private init(channel: any Channel, box: H2ProbeBox) {
        self.channel = channel
        self.box = box
    }

    var status: Int { self.box.state.withLock { $0.status } }
    /// Body bytes the connection wrote to the socket.
    var sentBytes: Int { self.box.state.withLock { $0.sent } }
    var receivedBytes: Int { self.box.state.withLock { $0.received } }
    /// The response body is the request body's pattern so far.
    var receivedIntact: Bool { self.box.state.withLock { $0.intact } }
    var finished: Bool { self.box.state.withLock { $0.finished } }
    /// The last stream id of a GOAWAY the server sent.
    var goAway: Int? { self.box.state.withLock { $0.goAway } }
    var connectionClosed: Bool { self.box.state.withLock { $0.closed } }

    /// The body's byte at `index`: its index modulo 251 (a prime: no chunk or frame size lines up with it).
    static func pattern(_ index: Int) -> UInt8 { UInt8(truncatingIfNeeded: index % 251) }

    /// `count` (at most a frame's worth) bytes of the pattern from `index` on.
    static func pattern(from index: Int, count: Int) -> ArraySlice<UInt8> {
        let start = index % 251
        return Self.patternBlock[start..<(start + count)]
    }

    private static let patternBlock: [UInt8] = (0..<(251 * 67)).map { UInt8(truncatingIfNeeded: $0 % 251) }

    static func start(port: Int, method: String, path: String, reads: Bool, upload: Int = 0) async throws -> H2Probe {
        let box = H2ProbeBox()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                        mode: .client, connectionConfiguration: .init(), streamConfiguration: .init()
                    ) { stream in
                        stream.close()
                    }
                    try channel.pipeline.syncOperations.addHandler(H2ProbeConnectionHandler(box))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        let probe = H2Probe(channel: channel, box: box)
        try await channel.eventLoop.flatSubmit {
            do {
                let multiplexer = try channel.pipeline.syncOperations.handler(type: NIOHTTP2Handler.self)
                    .syncMultiplexer()
                return multiplexer.createStreamChannel { stream in
                    stream.eventLoop.makeCompletedFuture {
                        try stream.pipeline.syncOperations.addHandler(
                            H2ProbeStreamHandler(
                                box, method: method, path: path, upload: upload, authority: "catalog", reads: reads))
                    }
                }
            } catch {
                return channel.eventLoop.makeFailedFuture(error)
            }
        }.get()
        if !reads {
            // The stream stops reading once the response head came.
            try await eventually { probe.status != 0 }
        }
        return probe
    }

    func close() async {
        try? await self.channel.close()
    }
}

private final class H2ProbeBox: Sendable {
    let state = Mutex(H2Probe.State())
}

private final class H2ProbeConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame

    private let box: H2ProbeBox

    init(_ box: H2ProbeBox) {
        self.box = box
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .goAway(let lastStreamID, _, _) = self.unwrapInboundIn(data).payload {
            self.box.state.withLock { $0.goAway = Int(lastStreamID) }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.box.state.withLock { $0.closed = true }
        context.fireChannelInactive()
    }
}

private final class H2ProbeStreamHandler: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    static let chunk = 16384

    private let box: H2ProbeBox
    private let method: String
    private let path: String
    private let authority: String
    private let upload: Int
    private let reads: Bool
    /// Body bytes handed to the stream so far.
    private var written = 0

    init(_ box: H2ProbeBox, method: String, path: String, upload: Int, authority: String, reads: Bool) {
        self.box = box
        self.reads = reads
        self.method = method
        self.path = path
        self.upload = upload
        self.authority = authority
    }

    func channelActive(context: ChannelHandlerContext) {
        var fields: [(String, String)] = [
            (":method", self.method), (":path", self.path), (":scheme", "http"), (":authority", self.authority),
        ]
        if self.upload > 0 {
            fields.append(("content-length", String(self.upload)))
        }
        context.writeAndFlush(
            self.wrapOutboundOut(.headers(.init(headers: .init(fields), endStream: self.upload == 0))), promise: nil)
        self.pump(context: context)
        context.fireChannelActive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.pump(context: context)
        context.fireChannelWritabilityChanged()
    }

    /// Writes the body while the stream is writable (its window and NIO's buffer have room).
    private func pump(context: ChannelHandlerContext) {
        while self.written < self.upload, context.channel.isWritable {
            let size = min(Self.chunk, self.upload - self.written)
            let buffer = context.channel.allocator.buffer(bytes: H2Probe.pattern(from: self.written, count: size))
            self.written += size
            let box = self.box
            let promise = context.eventLoop.makePromise(of: Void.self)
            promise.futureResult.whenSuccess {
                box.state.withLock { $0.sent += size }
            }
            let data = HTTP2Frame.FramePayload.Data(data: .byteBuffer(buffer), endStream: self.written == self.upload)
            context.writeAndFlush(self.wrapOutboundOut(.data(data)), promise: promise)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .headers(let headers):
            if let status = headers.headers.first(name: ":status").flatMap({ Int($0) }), status >= 200 {
                self.box.state.withLock { $0.status = status }
                if !self.reads {
                    // No read after this one: the client's window for the stream is never reopened.
                    context.channel.setOption(.autoRead, value: false).whenFailure { _ in }
                }
            }
            if headers.endStream {
                self.box.state.withLock { $0.finished = true }
            }
        case .data(let payload):
            if case .byteBuffer(let buffer) = payload.data {
                self.box.state.withLock { state in
                    let expected = H2Probe.pattern(from: state.received, count: buffer.readableBytes)
                    if !buffer.readableBytesView.elementsEqual(expected) {
                        state.intact = false
                    }
                    state.received += buffer.readableBytes
                }
            }
            if payload.endStream {
                self.box.state.withLock { $0.finished = true }
            }
        default:
            break
        }
    }
}

// MARK: - An upstream that takes connections and reads nothing

/// Accepts connections and never reads from them: what is sent to it stays in the socket buffers.
final class DeafUpstream: Sendable {
    private let channel: any Channel
    private let accepted = Atomic<Int>(0)

    private init(channel: any Channel) {
        self.channel = channel
    }

    var port: Int { self.channel.localAddress?.port ?? 0 }
    var connections: Int { self.accepted.load(ordering: .relaxed) }

    static func start() async throws -> DeafUpstream {
        let box = Mutex<DeafUpstream?>(nil)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelOption(.autoRead, value: false)
            .childChannelInitializer { channel in
                box.withLock { $0 }?.accepted.add(1, ordering: .relaxed)
                return channel.eventLoop.makeSucceededVoidFuture()
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let upstream = DeafUpstream(channel: channel)
        box.withLock { $0 = upstream }
        return upstream
    }

    func stop() async {
        try? await self.channel.close()
    }
}
