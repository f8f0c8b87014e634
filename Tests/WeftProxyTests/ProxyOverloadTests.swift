import NIOCore
import NIOHTTP1
import NIOPosix
import ProxyConfig
import Synchronization
import Testing

@testable import WeftProxy

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 11 item 3: the process-wide caps (downstream connections, buffered bytes), slow-loris heads and stalled
/// bodies, and a client that stops reading its response. Raw sockets on 127.0.0.1; every wait is bounded.
@Suite("weft-proxy overload: connection and buffer caps, slow clients")
struct ProxyOverloadTests {
    /// `catalog` to `recorder`, on the recorder's own address.
    private static func catalog(_ recorder: RawRecorder) -> ProxyConfig {
        Self.catalog(port: recorder.port, address: recorder.host)
    }

    private static func catalog(port: Int, address: String = "127.0.0.1", forward: ForwardAction? = nil) -> ProxyConfig
    {
        var route = TestConfig.forward(to: "a")
        if let forward {
            route.forward = forward
        }
        return TestConfig.config(
            outbound: [TestConfig.service("catalog", routes: [route])],
            clusters: [TestConfig.cluster("a", ports: [port], address: address)])
    }

    /// A plain TCP connection held open by the test.
    private static func connect(_ port: Int, autoRead: Bool = true) async throws -> any Channel {
        try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.autoRead, value: autoRead)
            .connect(host: "127.0.0.1", port: port).get()
    }

    // MARK: Connections

    @Test func connectionsPastTheCapAreRefusedOnBothListeners() async throws {
        // The two held connections send nothing: with no config the proxy closes a silent connection after
        // `headerTimeout` (10 s by default; `detectTimeout` on a `detect` port). Once, on a machine loaded by a
        // parallel build, the test outlived that: both were closed, `openConnections` 0 and "Already closed".
        let limits = ProxyLimits(
            headerTimeout: .seconds(300), detectTimeout: .seconds(300), maxDownstreamConnections: 2)
        try await ProxyHarness.withProxy(config: nil, limits: limits) { proxy in
            let first = try await Self.connect(proxy.outboundPort)
            let second = try await Self.connect(proxy.inboundPort)
            try await eventually { proxy.overload.openConnections == 2 }
            // Outbound: a fixed 503 and the connection closes, without a byte of the request read.
            let refused = try await rawExchange(port: proxy.outboundPort, "GET / HTTP/1.1\r\nHost: catalog\r\n\r\n")
            #expect(refused.hasPrefix("HTTP/1.1 503 Service Unavailable\r\n"), "\(refused)")
            #expect(refused.contains("x-weft-reason: overload\r\n"))
            // Inbound (TLS or TCP may arrive there): closed at once. The cap is the process's, not a listener's.
            // The close may come as a reset: when the request's bytes reached the socket before the proxy closed it
            // unread, the kernel answers with RST, not FIN (it did, once in 6 runs). Either way: no answer.
            let closed: String
            do {
                closed = try await rawExchange(port: proxy.inboundPort, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            } catch let error as IOError where error.errnoCode == ECONNRESET {
                closed = ""
            }
            #expect(closed.isEmpty, "\(closed)")
            let stats = proxy.metrics.renderStats()
            #expect(stats.contains("outbound.overload.connections: 1"), "\(stats)")
            #expect(stats.contains("inbound.overload.connections: 1"), "\(stats)")
            #expect(proxy.overload.openConnections == 2)
            // A slot frees when a connection closes: the next one is served (no config: 503 no_config).
            try await first.close()
            try await eventually { proxy.overload.openConnections == 1 }
            let served = try await rawExchange(
                port: proxy.outboundPort, "GET / HTTP/1.1\r\nHost: catalog\r\nConnection: close\r\n\r\n")
            #expect(served.contains("x-weft-reason: no_config\r\n"), "\(served)")
            try await second.close()
            try await eventually { proxy.overload.openConnections == 0 }
        }
    }

    /// `--listen 0.0.0.0,::` as injected: one port on both families; the cap counts both.
    @Test func severalListenAddressesShareOnePortAndTheCap() async throws {
        let limits = ProxyLimits(maxDownstreamConnections: 1)
        try await ProxyHarness.withProxy(config: nil, limits: limits, listen: "127.0.0.1,::1") { proxy in
            for host in ["127.0.0.1", "::1"] {
                let served = try await rawExchange(
                    host: host, port: proxy.outboundPort, "GET / HTTP/1.1\r\nHost: catalog\r\nConnection: close\r\n\r\n"
                )
                #expect(served.contains("x-weft-reason: no_config\r\n"), "\(host): \(served)")
                try await eventually { proxy.overload.openConnections == 0 }
            }
            let held = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "::1", port: proxy.outboundPort).get()
            try await eventually { proxy.overload.openConnections == 1 }
            let refused = try await rawExchange(port: proxy.outboundPort, "GET / HTTP/1.1\r\nHost: catalog\r\n\r\n")
            #expect(refused.contains("x-weft-reason: overload\r\n"), "\(refused)")
            try await held.close()
        }
    }

    // MARK: Buffered bytes

    @Test func aBodyWaitingForItsUpstreamPastTheBufferBudgetGets503() async throws {
        try await withUpstreams(["a"]) { upstreams in
            // A fault delay holds the request before its upstream try: its body waits in the proxy meanwhile.
            let forward = ForwardAction(
                backends: [WeightedCluster(cluster: "a", weight: 100)],
                fault: FaultInjection(delay: FaultDelay(percentage: 100, delayMs: 60_000)))
            let limits = ProxyLimits(maxBufferedBytes: 1000)
            try await ProxyHarness.withProxy(
                config: Self.catalog(port: upstreams[0].port, forward: forward), limits: limits
            ) { proxy in
                let body = String(repeating: "x", count: 4000)
                // The answer comes while the body is still arriving; the rest is read and discarded.
                let response = try await rawResponse(
                    port: proxy.outboundPort,
                    "POST /upload HTTP/1.1\r\nHost: catalog\r\nContent-Length: 4000\r\n\r\n\(body)", until: "overload\n"
                )
                #expect(response.hasPrefix("HTTP/1.1 503 Service Unavailable\r\n"), "\(response)")
                #expect(response.contains("x-weft-reason: overload\r\n"))
                let stats = proxy.metrics.renderStats()
                #expect(stats.contains("outbound.5xx.overload: 1"), "\(stats)")
                #expect(stats.contains("outbound.overload.buffered_bytes: 1"), "\(stats)")
                try await eventually { proxy.overload.bufferedBytes == 0 }
            }
        }
    }

    @Test func aRetryBufferPastTheBudgetIsDroppedAndTheRequestStreams() async throws {
        try await withUpstreams(["a"]) { upstreams in
            let forward = ForwardAction(
                backends: [WeightedCluster(cluster: "a", weight: 100)],
                retry: RetryPolicy(attempts: 2, retryOn: ["5xx"], retryNonIdempotent: true))
            let limits = ProxyLimits(maxBufferedBytes: 1000)
            // One event loop and a pooled upstream connection: the body goes straight upstream, only the retry
            // buffer holds it.
            let config = Self.catalog(port: upstreams[0].port, forward: forward)
            try await ProxyHarness.withProxy(config: config, singleEventLoop: true, limits: limits) { proxy in
                _ = try await proxy.get("/warm", host: "catalog")
                let body = String(repeating: "y", count: 4000)
                let response = try await rawExchange(
                    port: proxy.outboundPort,
                    "POST /upload HTTP/1.1\r\nHost: catalog\r\nContent-Length: 4000\r\nConnection: close\r\n\r\n\(body)"
                )
                #expect(response.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(response)")
                let stats = proxy.metrics.renderStats()
                #expect(stats.contains("outbound.2xx.upstream: 2"), "\(stats)")
                #expect(stats.contains("outbound.overload.buffered_bytes: 1"), "\(stats)")
                try await eventually { proxy.overload.bufferedBytes == 0 }
            }
        }
    }

    // MARK: Slow clients

    @Test func aStalledHTTP1BodyGets408AndItsMemoryGoes() async throws {
        // The recorder answers only a complete request: nothing comes back before the timeout.
        let recorder = try await RawRecorder.start()
        do {
            let limits = ProxyLimits(bodyTimeout: .milliseconds(200))
            try await ProxyHarness.withProxy(
                config: Self.catalog(recorder), limits: limits
            ) { proxy in
                // 10 of 100 announced bytes, then nothing.
                let response = try await rawExchange(
                    port: proxy.outboundPort,
                    "POST /upload HTTP/1.1\r\nHost: catalog\r\nContent-Length: 100\r\n\r\n0123456789")
                #expect(response.hasPrefix("HTTP/1.1 408 Request Timeout\r\n"), "\(response)")
                #expect(response.contains("x-weft-reason: body_timeout\r\n"))
                #expect(proxy.metrics.renderStats().contains("outbound.4xx.body_timeout: 1"))
                try await eventually { proxy.overload.bufferedBytes == 0 && proxy.overload.openConnections == 0 }
            }
        } catch {
            await recorder.stop()
            throw error
        }
        await recorder.stop()
    }

    @Test func aStalledHTTP2BodyGets408() async throws {
        let recorder = try await RawRecorder.start()
        do {
            let limits = ProxyLimits(bodyTimeout: .milliseconds(200))
            try await ProxyHarness.withProxy(
                config: Self.catalog(recorder), limits: limits
            ) { proxy in
                let responses = try await h2Exchange(
                    port: proxy.outboundPort,
                    [H2Request(method: "POST", path: "/upload", authority: "catalog", data: ["part"], stallsBody: true)]
                )
                #expect(responses.map(\.status) == [408])
                #expect(responses.first?.headers.contains { $0 == ("x-weft-reason", "body_timeout") } == true)
                #expect(proxy.metrics.renderStats().contains("outbound.4xx.body_timeout: 1"))
            }
        } catch {
            await recorder.stop()
            throw error
        }
        await recorder.stop()
    }

    /// A client that stops reading must not make the proxy read (and hold) the upstream's endless response: the
    /// upstream is held back by TCP once the socket buffers between them are full.
    @Test func aClientThatStopsReadingHoldsTheUpstreamBack() async throws {
        let upstream = try await EndlessResponder.start()
        do {
            try await ProxyHarness.withProxy(config: Self.catalog(port: upstream.port)) { proxy in
                let client = try await Self.connect(proxy.outboundPort, autoRead: false)
                try await client.writeAndFlush(ByteBuffer(string: "GET /endless HTTP/1.1\r\nHost: catalog\r\n\r\n"))
                // Never reads. Without backpressure the proxy takes all the upstream sends (256 MiB, then it stops).
                #expect(try await upstream.heldBack(), "the proxy read the whole endless response")
                let sent = upstream.sentBytes
                // Loopback socket buffers (client receive, proxy send and receive, upstream send) hold a few MiB.
                #expect(sent < 48 << 20, "upstream sent \(sent) bytes")
                try await client.close()
            }
        } catch {
            await upstream.stop()
            throw error
        }
        await upstream.stop()
    }
}

// MARK: - State machines

@Suite("weft-proxy overload: state machines")
struct OverloadStateMachineTests {
    @Test func bodyStallTranscript() {
        var machine = BodyStallStateMachine()
        // A body complete in the first read never arms the timer.
        #expect(machine.readComplete(waiting: false) == .none)
        // A body that goes on arms it once.
        #expect(machine.readComplete(waiting: true) == .arm)
        #expect(machine.readComplete(waiting: true) == .none)
        machine.bodyRead()
        #expect(machine.timerFired(waiting: true, held: false) == .arm)
        // Reads held back by the proxy are not the client's stall.
        #expect(machine.timerFired(waiting: true, held: true) == .arm)
        #expect(machine.timerFired(waiting: true, held: false) == .stalled)
        // The body ended before the timer: nothing, and the next request arms afresh.
        machine.reset()
        #expect(machine.readComplete(waiting: true) == .arm)
        #expect(machine.timerFired(waiting: false, held: false) == .none)
        #expect(machine.readComplete(waiting: true) == .arm)
    }

    @Test func connectionAndBufferCaps() {
        let overload = OverloadManager(maxConnections: 2, maxBufferedBytes: 100)
        #expect(overload.admitConnection())
        #expect(overload.admitConnection())
        #expect(!overload.admitConnection())
        #expect(overload.openConnections == 2)
        overload.connectionClosed()
        #expect(overload.admitConnection())

        var first = BufferReservation()
        var second = BufferReservation()
        let tookFirst = first.take(60, from: overload)
        let tookTooMuch = second.take(50, from: overload)
        let tookRest = second.take(40, from: overload)
        #expect(tookFirst && !tookTooMuch && tookRest)
        #expect(overload.bufferedBytes == 100)
        first.releaseAll(to: overload)
        #expect(overload.bufferedBytes == 40)
        second.releaseAll(to: overload)
        second.releaseAll(to: overload)
        #expect(overload.bufferedBytes == 0)
    }
}

/// Sends raw bytes to 127.0.0.1:`port` and returns what was read once it contains `marker` (or the server closed,
/// failing after 60 s, a hang guard).
func rawResponse(port: Int, _ request: String, until marker: String) async throws -> String {
    let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .connect(host: "127.0.0.1", port: port) { channel in
            channel.eventLoop.makeCompletedFuture {
                try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
            }
        }
    return try await withThrowingTaskGroup(of: String.self) { group in
        group.addTask {
            try await channel.executeThenClose { inbound, outbound in
                try? await outbound.write(ByteBuffer(string: request))
                var received = ""
                for try await buffer in inbound {
                    received += String(buffer: buffer)
                    if received.contains(marker) {
                        break
                    }
                }
                return received
            }
        }
        group.addTask {
            try await Task.sleep(for: .seconds(60))
            throw CancellationError()
        }
        defer { group.cancelAll() }
        return try await group.next() ?? ""
    }
}

// MARK: - An upstream that never stops answering

/// Answers any request with an endless chunked body (up to 256 MiB), writing while its connection is writable.
final class EndlessResponder: Sendable {
    static let limit = 256 << 20
    private let channel: any Channel
    fileprivate let sent = Atomic<Int>(0)
    fileprivate let isBlocked = Atomic<Bool>(false)

    private init(channel: any Channel) {
        self.channel = channel
    }

    var port: Int { self.channel.localAddress?.port ?? 0 }
    var sentBytes: Int { self.sent.load(ordering: .relaxed) }
    /// Its connection is not writable now (the reader is not taking the bytes).
    var blocked: Bool { self.isBlocked.load(ordering: .relaxed) }
    var finished: Bool { self.sentBytes >= Self.limit }

    /// Waits until the upstream is held back for good (25 looks in a row find it blocked with nothing more sent:
    /// socket buffers grow for a while first) or has sent all 256 MiB (no backpressure); true when held back.
    func heldBack() async throws -> Bool {
        let sent = try await bytesOnceSettled(limit: Self.limit) { (self.sentBytes, self.blocked) }
        return sent < Self.limit
    }

    static func start() async throws -> EndlessResponder {
        let box = Mutex<EndlessResponder?>(nil)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard let responder = box.withLock({ $0 }) else {
                        throw ChannelError.ioOnClosedChannel
                    }
                    try channel.pipeline.syncOperations.addHandler(EndlessHandler(responder))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let responder = EndlessResponder(channel: channel)
        box.withLock { $0 = responder }
        return responder
    }

    func stop() async {
        try? await self.channel.close()
    }
}

private final class EndlessHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let responder: EndlessResponder
    private var started = false

    init(_ responder: EndlessResponder) {
        self.responder = responder
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.started else {
            return
        }
        self.started = true
        context.write(
            self.wrapOutboundOut(ByteBuffer(string: "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")),
            promise: nil)
        self.pump(context: context)
    }

    /// Writes chunks while the connection is writable, yielding to the event loop every 64 of them.
    private func pump(context: ChannelHandlerContext) {
        let chunk = ByteBuffer(string: "4000\r\n" + String(repeating: "z", count: 0x4000) + "\r\n")
        for _ in 0..<64 {
            guard context.channel.isActive, self.responder.sentBytes < EndlessResponder.limit else {
                return
            }
            guard context.channel.isWritable else {
                self.responder.isBlocked.store(true, ordering: .relaxed)
                context.flush()
                return
            }
            self.responder.isBlocked.store(false, ordering: .relaxed)
            context.write(self.wrapOutboundOut(chunk), promise: nil)
            self.responder.sent.add(0x4000, ordering: .relaxed)
        }
        context.flush()
        let loop = context.eventLoop.assumeIsolated()
        loop.execute { [self] in
            self.pump(context: context)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            self.pump(context: context)
        }
    }
}
