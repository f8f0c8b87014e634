import NIOCore
import NIOEmbedded
import Testing

@testable import WeftProxy

/// `FlushCoalescingHandler`: what an HTTP/2 connection writes in one event-loop tick leaves as one write at the
/// end of the tick, in order, with every write's promise kept. (End to end, every h2c test in
/// `ProxyProtocolTests` and `ProxyHTTP2UpstreamTests` runs through it on both legs.)
@Suite("HTTP/2 connection writes: one batch per event-loop tick")
struct FlushCoalescingHandlerTests {
    /// The writes that reached the socket side, as strings ("file" for a file region).
    private static func written(_ channel: EmbeddedChannel) throws -> [String] {
        var writes: [String] = []
        while let data = try channel.readOutbound(as: IOData.self) {
            switch data {
            case .byteBuffer(let buffer): writes.append(String(buffer: buffer))
            case .fileRegion: writes.append("file")
            }
        }
        return writes
    }

    private static func write(_ channel: EmbeddedChannel, _ text: String, promise: EventLoopPromise<Void>? = nil) {
        channel.write(IOData.byteBuffer(ByteBuffer(string: text)), promise: promise)
    }

    @Test("small writes and a flush: nothing until the tick ends, then one write with all of them, in order")
    func batchesOneTick() throws {
        let channel = EmbeddedChannel(handler: FlushCoalescingHandler())
        Self.write(channel, "HEADERS;")
        Self.write(channel, "DATA;")
        channel.flush()
        Self.write(channel, "ok;")
        channel.flush()
        #expect(try Self.written(channel) == [])
        channel.embeddedEventLoop.run()
        #expect(try Self.written(channel) == ["HEADERS;DATA;ok;"])

        // The next tick's batch starts empty (the storage is reused, the bytes are not sent twice).
        Self.write(channel, "next")
        channel.flush()
        channel.embeddedEventLoop.run()
        #expect(try Self.written(channel) == ["next"])
        #expect(try channel.finish().isClean)
    }

    @Test("a write larger than the copy limit passes through uncopied, after the batch before it, before the one after")
    func largeWritesPassThroughInOrder() throws {
        let channel = EmbeddedChannel(handler: FlushCoalescingHandler())
        let large = String(repeating: "x", count: FlushCoalescingHandler.copyLimit + 1)
        Self.write(channel, "header;")
        Self.write(channel, large)
        Self.write(channel, "after;")
        channel.flush()
        channel.embeddedEventLoop.run()
        #expect(try Self.written(channel) == ["header;", large, "after;"])
        #expect(try channel.finish().isClean)
    }

    @Test("every write's promise completes when its batch is written; none before")
    func promisesCompleteWithTheBatch() throws {
        let channel = EmbeddedChannel(handler: FlushCoalescingHandler())
        let first = channel.eventLoop.makePromise(of: Void.self)
        let second = channel.eventLoop.makePromise(of: Void.self)
        let single = channel.eventLoop.makePromise(of: Void.self)
        let done = NIOLoopBoundBox([String](), eventLoop: channel.eventLoop)
        first.futureResult.whenSuccess { done.value.append("first") }
        second.futureResult.whenSuccess { done.value.append("second") }
        single.futureResult.whenSuccess { done.value.append("single") }
        Self.write(channel, "a", promise: first)
        Self.write(channel, "b")
        Self.write(channel, "c", promise: second)
        channel.flush()
        #expect(done.value == [])
        channel.embeddedEventLoop.run()
        #expect(done.value == ["first", "second"])
        Self.write(channel, "d", promise: single)
        channel.flush()
        channel.embeddedEventLoop.run()
        #expect(done.value == ["first", "second", "single"])
        #expect(try Self.written(channel) == ["abc", "d"])
        #expect(try channel.finish().isClean)
    }

    @Test("a close right after a flush (a GOAWAY, then close) still sends what was flushed, before closing")
    func closeSendsWhatWasFlushed() throws {
        let channel = EmbeddedChannel(handler: FlushCoalescingHandler())
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        Self.write(channel, "GOAWAY")
        channel.flush()
        let closed = channel.close()
        #expect(try Self.written(channel) == ["GOAWAY"])
        channel.embeddedEventLoop.run()
        try closed.wait()
    }

    @Test("writes batched on a channel that closed fail their promises: none is lost, none succeeds")
    func batchOnAClosedChannelFailsItsPromises() throws {
        let channel = EmbeddedChannel(handler: FlushCoalescingHandler())
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        let closed = channel.close()
        let first = channel.eventLoop.makePromise(of: Void.self)
        let second = channel.eventLoop.makePromise(of: Void.self)
        let outcomes = NIOLoopBoundBox((failures: 0, successes: 0), eventLoop: channel.eventLoop)
        for promise in [first, second] {
            promise.futureResult.whenComplete { result in
                if case .failure = result { outcomes.value.failures += 1 } else { outcomes.value.successes += 1 }
            }
        }
        Self.write(channel, "a", promise: first)
        Self.write(channel, "b", promise: second)
        channel.flush()
        channel.embeddedEventLoop.run()
        try closed.wait()
        #expect(outcomes.value.failures == 2)
        #expect(outcomes.value.successes == 0)
        #expect(try Self.written(channel) == [])
    }
}
