import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import WeftProxy

/// `UpstreamHandler` holds its delegate (the request handler) and its pool strongly, not weakly (a weak reference
/// would give them side tables and slow every retain and release). So it must let go of them itself: when the
/// request detaches, when the connection closes, and when the handler leaves its pipeline. These tests hold the
/// delegate only weakly and check that nothing else keeps it alive.
@Suite("UpstreamHandler: the delegate is held only while attached")
struct UpstreamHandlerLifetimeTests {
    private final class Delegate: UpstreamDelegate {
        var reads = 0
        var closed = 0
        var isWritable: Bool { true }
        func upstreamRead(_ part: HTTPClientResponsePart, from upstream: UpstreamHandler) { self.reads += 1 }
        func upstreamClosed(_ upstream: UpstreamHandler) { self.closed += 1 }
        func flushDownstream() {}
        func resumeReads() {}
    }

    private static func handler(on channel: EmbeddedChannel) throws -> UpstreamHandler {
        let pool = UpstreamPool(eventLoop: channel.eventLoop)
        let key = UpstreamKey(protocolKind: .http1, host: "127.0.0.1", port: 1, identity: nil)
        let handler = UpstreamHandler(pool: pool, key: key, cluster: "a", kind: .http1)
        try channel.pipeline.syncOperations.addHandler(handler)
        return handler
    }

    private static let response = HTTPClientResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok))

    /// Attaches a new delegate that only `handler` holds; returns a weak reference to it.
    private static func attachFresh(to handler: UpstreamHandler) -> () -> Delegate? {
        let delegate = Delegate()
        handler.attach(delegate)
        return { [weak delegate] in delegate }
    }

    @Test func detachLetsGo() throws {
        let channel = EmbeddedChannel()
        let handler = try Self.handler(on: channel)
        let attached = Self.attachFresh(to: handler)
        try channel.writeInbound(Self.response)
        #expect(attached()?.reads == 1, "attached: the handler keeps its delegate and hands it the response")
        handler.detach()
        #expect(attached() == nil)
        _ = try? channel.finish()
    }

    @Test func aClosedConnectionLetsGo() throws {
        let channel = EmbeddedChannel()
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        let handler = try Self.handler(on: channel)
        let attached = Self.attachFresh(to: handler)
        #expect(attached() != nil)
        try channel.close().wait()
        #expect(attached() == nil)
    }

    @Test func theDelegateHearsOfTheClose() throws {
        let channel = EmbeddedChannel()
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        let handler = try Self.handler(on: channel)
        let delegate = Delegate()
        handler.attach(delegate)
        try channel.close().wait()
        #expect(delegate.closed == 1)
    }

    @Test func leavingThePipelineLetsGo() throws {
        let channel = EmbeddedChannel()
        let handler = try Self.handler(on: channel)
        let attached = Self.attachFresh(to: handler)
        #expect(attached() != nil)
        try channel.pipeline.syncOperations.removeHandler(handler).wait()
        #expect(attached() == nil)
        _ = try? channel.finish()
    }
}
