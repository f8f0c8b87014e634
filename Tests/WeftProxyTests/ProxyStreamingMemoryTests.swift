import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import Testing

/// Issue 10 item 4: a 100 MB upload and a 100 MB download through the `weft-proxy` process stream: the proxy
/// reads a side only while the other can take the bytes, so its resident memory (`VmRSS` of
/// `/proc/PID/status`, sampled every 5 ms) stays within 10 MiB of what it was idle.
@Suite("weft-proxy streaming memory")
struct ProxyStreamingMemoryTests {
    static let size = 100 * 1000 * 1000
    static let chunk = 64 << 10

    @Test func aHundredMegabytesEachWayKeepTheProxysMemoryFlat() async throws {
        let upstream = try await StreamingUpstream.start()
        do {
            try await withProxyBinary(upstreamPort: upstream.port) { proxy in
                let pid = proxy.process.process.processIdentifier
                let port = proxy.outboundPort
                // Warm: one request each way sets up the connection, the pool and the lazy state.
                #expect(try await Self.upload(port, bytes: 1 << 20) == 1 << 20)
                #expect(try await Self.download(port, bytes: 1 << 20) == 1 << 20)
                let idle = try #require(residentKiB(pid))
                let peak = Atomic<Int>(idle)
                let sampling = Task {
                    while !Task.isCancelled {
                        if let rss = residentKiB(pid) {
                            peak.max(rss, ordering: .relaxed)
                        }
                        try? await Task.sleep(for: .milliseconds(5))
                    }
                }
                let uploaded = try await Self.upload(port, bytes: Self.size)
                let downloaded = try await Self.download(port, bytes: Self.size)
                sampling.cancel()
                _ = await sampling.value
                #expect(uploaded == Self.size)
                #expect(downloaded == Self.size)
                let growth = peak.load(ordering: .relaxed) - idle
                #expect(growth < 10 << 10, "idle \(idle) KiB, at most \(idle + growth) KiB while streaming")
            }
        } catch {
            await upstream.stop()
            throw error
        }
        await upstream.stop()
    }

    /// POSTs `bytes` (64 KiB buffers, each written once the connection takes it) on a raw connection and returns
    /// the count the upstream read. (Not AsyncHTTPClient: the upstream answers as the last byte arrives, before the
    /// client has ended its request, and once a CI run crashed in AsyncHTTPClient's pool on such an answer.)
    private static func upload(_ port: Int, bytes: Int) async throws -> Int {
        let body = Mutex<String>("")
        try await RawSession.with(port: port) { session in
            try await session.send(
                "POST /upload HTTP/1.1\r\nHost: catalog\r\nContent-Length: \(bytes)\r\nConnection: close\r\n\r\n")
            let chunk = ByteBuffer(repeating: UInt8(ascii: "w"), count: Self.chunk)
            var left = bytes
            while left > 0 {
                let size = Swift.min(left, Self.chunk)
                try await session.send(chunk.getSlice(at: 0, length: size) ?? chunk)
                left -= size
            }
            let text = try await session.readToEnd()
            body.withLock { $0 = text }
        }
        let text = body.withLock { $0 }
        guard text.hasPrefix("HTTP/1.1 200 OK\r\n"), let end = text.range(of: "\r\n\r\n") else {
            return -1
        }
        return Int(text[end.upperBound...]) ?? -1
    }

    /// GETs `bytes` from the upstream on a raw connection and returns how many body bytes arrived (counted, not
    /// kept).
    private static func download(_ port: Int, bytes: Int) async throws -> Int {
        let received = Mutex<Int>(-1)
        try await RawSession.with(port: port) { session in
            try await session.send("GET /download/\(bytes) HTTP/1.1\r\nHost: catalog\r\nConnection: close\r\n\r\n")
            let response = try await session.responseToEnd()
            if response.head.hasPrefix("HTTP/1.1 200 OK\r\n") {
                received.withLock { $0 = response.bodyBytes }
            }
        }
        return received.withLock { $0 }
    }
}

/// `VmRSS` of a process in KiB (nil once it is gone).
func residentKiB(_ pid: Int32) -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else {
        return nil
    }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
    }
    return nil
}

/// An upstream for large bodies: `POST /upload` reads the body and answers its byte count; `GET /download/N`
/// answers N bytes, written while its connection is writable.
final class StreamingUpstream: Sendable {
    private let channel: any Channel
    var port: Int { self.channel.localAddress?.port ?? 0 }

    private init(channel: any Channel) {
        self.channel = channel
    }

    static func start() async throws -> StreamingUpstream {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(StreamingHandler())
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return StreamingUpstream(channel: channel)
    }

    func stop() async {
        try? await self.channel.close()
    }
}

private final class StreamingHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private var received = 0
    private var left = 0
    private var pumping = false
    private let chunk = ByteBuffer(repeating: UInt8(ascii: "d"), count: 64 << 10)

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.received = 0
            if head.uri.hasPrefix("/download/") {
                self.left = Int(head.uri.dropFirst("/download/".count)) ?? 0
                var headers = HTTPHeaders()
                headers.add(name: "content-length", value: "\(self.left)")
                context.write(
                    self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))),
                    promise: nil)
                self.pump(context: context)
            }
        case .body(let buffer):
            self.received += buffer.readableBytes
        case .end:
            if self.left == 0, self.received > 0 {
                let body = ByteBuffer(string: "\(self.received)")
                var headers = HTTPHeaders()
                headers.add(name: "content-length", value: "\(body.readableBytes)")
                context.write(
                    self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))),
                    promise: nil)
                context.write(self.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
                context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }

    private func pump(context: ChannelHandlerContext) {
        // A write or flush can change writability, which calls this again: one pump at a time.
        guard self.left > 0, !self.pumping else {
            return
        }
        self.pumping = true
        defer { self.pumping = false }
        repeat {
            while self.left > 0, context.channel.isWritable {
                let size = Swift.min(self.left, self.chunk.readableBytes)
                self.left -= size
                context.write(
                    self.wrapOutboundOut(.body(.byteBuffer(self.chunk.getSlice(at: 0, length: size) ?? self.chunk))),
                    promise: nil)
            }
            if self.left == 0 {
                context.write(self.wrapOutboundOut(.end(nil)), promise: nil)
            }
            context.flush()
        } while self.left > 0 && context.channel.isWritable
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.left = 0
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.pump(context: context)
        context.fireChannelWritabilityChanged()
    }
}
