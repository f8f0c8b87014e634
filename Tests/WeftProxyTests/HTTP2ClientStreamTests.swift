import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP1
import NIOHTTP2
import Testing

@testable import WeftProxy

/// `HTTP2ClientConnection` and its streams on an embedded channel (frames and NIOHTTP2Handler's events fed by
/// hand): a response held back for a slow downstream survives its stream's clean close, a reset drops it, a refused
/// stream is marked refused.
@Suite("HTTP/2 upstream streams: held responses and closes")
struct HTTP2ClientStreamTests {
    /// The request side of one stream: what it received, whether the downstream can take more.
    final class Recorder: UpstreamDelegate {
        var isWritable = true
        var parts: [String] = []
        var closed = false

        func upstreamRead(_ part: HTTPClientResponsePart, from upstream: UpstreamHandler) {
            switch part {
            case .head(let head): self.parts.append("head \(head.status.code)")
            case .body(let buffer): self.parts.append("body \(String(buffer: buffer))")
            case .end: self.parts.append("end")
            }
        }

        func upstreamClosed(_ upstream: UpstreamHandler) {
            self.closed = true
        }

        func flushDownstream() {}
        func resumeReads() {}
    }

    /// A connection on an embedded channel with one stream that sent a GET, and the stream's first frame.
    private static func stream() throws -> (EmbeddedChannel, UpstreamHandler, Recorder, HTTP2Frame?) {
        let channel = EmbeddedChannel()
        let connection = HTTP2ClientConnection()
        try channel.pipeline.syncOperations.addHandler(connection)
        let pool = UpstreamPool(eventLoop: channel.embeddedEventLoop)
        let upstream = UpstreamHandler(
            pool: pool, key: UpstreamKey(protocolKind: .http2, host: "127.0.0.1", port: 1, identity: nil),
            cluster: "c", kind: .http2)
        _ = connection.makeStream(for: upstream)
        let recorder = Recorder()
        upstream.attach(recorder)
        upstream.send(.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: ["host": "a"])))
        upstream.send(.end(nil))
        upstream.flush()
        return (channel, upstream, recorder, try channel.readOutbound(as: HTTP2Frame.self))
    }

    private static func read(_ channel: EmbeddedChannel, _ payloads: [HTTP2Frame.FramePayload]) throws {
        for payload in payloads {
            try channel.writeInbound(HTTP2Frame(streamID: 1, payload: payload))
        }
        channel.pipeline.fireChannelReadComplete()
    }

    private static func data(_ text: String, end: Bool = false) -> HTTP2Frame.FramePayload {
        .data(.init(data: .byteBuffer(ByteBuffer(string: text)), endStream: end))
    }

    @Test("a GET opens stream 1 with one HEADERS frame that ends it")
    func firstFrame() throws {
        let (_, _, _, frame) = try Self.stream()
        #expect(frame?.streamID == 1)
        guard case .headers(let headers) = frame?.payload else {
            Issue.record("no HEADERS: \(String(describing: frame))")
            return
        }
        #expect(headers.endStream)
        #expect(headers.headers.first(name: ":authority") == "a")
    }

    @Test("both sides ended while the response waits for the downstream: every part is delivered, then the close")
    func heldResponseSurvivesACleanClose() throws {
        let (channel, upstream, recorder, _) = try Self.stream()
        try Self.read(channel, [.headers(.init(headers: [":status": "200"]))])
        #expect(recorder.parts == ["head 200"])
        // The downstream cannot take more: what comes next waits in the stream.
        recorder.isWritable = false
        try Self.read(channel, [Self.data("a")])
        try Self.read(channel, [Self.data("b"), Self.data("c", end: true)])
        channel.pipeline.fireUserInboundEventTriggered(StreamClosedEvent(streamID: 1, reason: nil))
        #expect(recorder.parts == ["head 200", "body a"])
        #expect(!recorder.closed)
        recorder.isWritable = true
        upstream.resumeReads()
        #expect(recorder.parts == ["head 200", "body a", "body b", "body c", "end"])
        #expect(recorder.closed)
        #expect(!upstream.refusedStream)
    }

    @Test("a reset drops what waits and closes at once; a refused stream, or one above a GOAWAY's last, is refused")
    func resetsAndRefusals() throws {
        let (channel, upstream, recorder, _) = try Self.stream()
        try Self.read(channel, [.headers(.init(headers: [":status": "200"]))])
        recorder.isWritable = false
        try Self.read(channel, [Self.data("a"), Self.data("b")])
        channel.pipeline.fireUserInboundEventTriggered(StreamClosedEvent(streamID: 1, reason: .cancel))
        #expect(recorder.closed)
        #expect(recorder.parts == ["head 200", "body a"])
        #expect(!upstream.refusedStream)

        let (refusedChannel, refused, refusedRecorder, _) = try Self.stream()
        refusedChannel.pipeline.fireUserInboundEventTriggered(StreamClosedEvent(streamID: 1, reason: .refusedStream))
        #expect(refusedRecorder.closed)
        #expect(refused.refusedStream)

        // Above a GOAWAY's last stream: NIOHTTP2Handler closes it with CANCEL; it was never processed.
        let (goneChannel, gone, goneRecorder, _) = try Self.stream()
        try goneChannel.writeInbound(
            HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: 0, errorCode: .noError, opaqueData: nil)))
        goneChannel.pipeline.fireUserInboundEventTriggered(StreamClosedEvent(streamID: 1, reason: .cancel))
        #expect(goneRecorder.closed)
        #expect(gone.refusedStream)
    }
}
