import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOHTTP2
import Testing

@testable import WeftProxy

/// `HTTP2ServerStreamCodec`: a response's last body chunk and its end in one DATA frame, nothing held past a flush.
/// (End to end, `ProxyProtocolTests`' gRPC bidi call, strict ping-pong through the proxy, would hang if a flush
/// left a message behind.)
@Suite("HTTP/2 downstream stream codec: the last DATA frame carries END_STREAM")
struct HTTP2ServerStreamCodecTests {
    /// What the codec wrote, as "HEADERS 200", "DATA ok END", "TRAILERS".
    private static func written(_ channel: EmbeddedChannel) throws -> [String] {
        var frames: [String] = []
        while let payload = try channel.readOutbound(as: HTTP2Frame.FramePayload.self) {
            switch payload {
            case .headers(let headers):
                if let status = headers.headers.first(name: ":status") {
                    frames.append("HEADERS \(status)\(headers.endStream ? " END" : "")")
                } else {
                    frames.append("TRAILERS\(headers.endStream ? " END" : "")")
                }
            case .data(let data):
                guard case .byteBuffer(let buffer) = data.data else {
                    frames.append("DATA (file)")
                    continue
                }
                frames.append("DATA \(String(buffer: buffer))\(data.endStream ? " END" : "")")
            default:
                frames.append("\(payload)")
            }
        }
        return frames
    }

    private static func write(_ channel: EmbeddedChannel, _ part: HTTPServerResponsePart) {
        channel.write(part, promise: nil)
    }

    private static let head = HTTPServerResponsePart.head(HTTPResponseHead(version: .http2, status: .ok))
    private static func body(_ text: String) -> HTTPServerResponsePart { .body(.byteBuffer(ByteBuffer(string: text))) }

    @Test("head, body, end written together: HEADERS, then one DATA frame with END_STREAM")
    func mergesTheLastChunkWithTheEnd() throws {
        let channel = EmbeddedChannel(handler: HTTP2ServerStreamCodec())
        Self.write(channel, Self.head)
        Self.write(channel, Self.body("ok"))
        Self.write(channel, .end(nil))
        channel.flush()
        #expect(try Self.written(channel) == ["HEADERS 200", "DATA ok END"])
        #expect(try channel.finish().isClean)
    }

    @Test("a flush sends the held chunk: a streamed body is not delayed; only the last chunk carries the end")
    func flushReleasesTheHeldChunk() throws {
        let channel = EmbeddedChannel(handler: HTTP2ServerStreamCodec())
        Self.write(channel, Self.head)
        Self.write(channel, Self.body("a"))
        channel.flush()
        #expect(try Self.written(channel) == ["HEADERS 200", "DATA a"])
        Self.write(channel, Self.body("b"))
        Self.write(channel, Self.body("c"))
        Self.write(channel, .end(nil))
        channel.flush()
        #expect(try Self.written(channel) == ["DATA b", "DATA c END"])
        #expect(try channel.finish().isClean)
    }

    @Test("trailers and body-less responses go out as before")
    func trailersAndNoBody() throws {
        let channel = EmbeddedChannel(handler: HTTP2ServerStreamCodec())
        Self.write(channel, Self.head)
        Self.write(channel, Self.body("message"))
        Self.write(channel, .end(HTTPHeaders([("grpc-status", "0")])))
        channel.flush()
        #expect(try Self.written(channel) == ["HEADERS 200", "DATA message", "TRAILERS END"])

        Self.write(channel, Self.head)
        Self.write(channel, .end(nil))
        channel.flush()
        #expect(try Self.written(channel) == ["HEADERS 200", "DATA  END"])
        #expect(try channel.finish().isClean)
    }

    @Test("the body's and the end's write promises both complete with the one frame")
    func promisesOfAMergedFrame() throws {
        let channel = EmbeddedChannel(handler: HTTP2ServerStreamCodec())
        let bodyWritten = channel.eventLoop.makePromise(of: Void.self)
        let endWritten = channel.eventLoop.makePromise(of: Void.self)
        channel.write(Self.body("ok"), promise: bodyWritten)
        channel.write(HTTPServerResponsePart.end(nil), promise: endWritten)
        #expect(try Self.written(channel).isEmpty, "nothing leaves before the flush")
        channel.flush()
        #expect(try Self.written(channel) == ["DATA ok END"])
        try bodyWritten.futureResult.wait()
        try endWritten.futureResult.wait()
        #expect(try channel.finish().isClean)
    }

    @Test("requests pass through NIO's codec: HEADERS with END_STREAM is a head and an end")
    func requestsAreDecodedAsBefore() throws {
        let channel = EmbeddedChannel(handler: HTTP2ServerStreamCodec())
        let request = HTTP2Frame.FramePayload.headers(
            .init(
                headers: [":method": "GET", ":path": "/x", ":scheme": "http", ":authority": "catalog"],
                endStream: true))
        try channel.writeInbound(request)
        let head = try channel.readInbound(as: HTTPServerRequestPart.self)
        guard case .head(let parsed) = head else {
            Issue.record("expected a request head, got \(String(describing: head))")
            return
        }
        #expect(parsed.uri == "/x")
        #expect(parsed.headers.first(name: "host") == "catalog")
        guard case .end = try channel.readInbound(as: HTTPServerRequestPart.self) else {
            Issue.record("expected the request's end")
            return
        }
        #expect(try channel.finish().isClean)
    }

    /// The header block (names and values, in order) that `part` becomes, written through `handler`.
    private static func block(of part: HTTPServerResponsePart, through handler: any ChannelHandler) throws
        -> [String]
    {
        let channel = EmbeddedChannel(handler: handler)
        channel.write(part, promise: nil)
        channel.flush()
        guard case .headers(let headers) = try channel.readOutbound(as: HTTP2Frame.FramePayload.self) else {
            Issue.record("no HEADERS frame for \(part)")
            return []
        }
        _ = try channel.finish()
        return headers.headers.map {
            "\($0.name): \($0.value)\($0.indexable == .indexable ? "" : " (\($0.indexable))")"
        }
            + (headers.endStream ? ["END_STREAM"] : [])
    }

    static let fieldSets: [[(String, String)]] = [
        [],
        [("Server", "nginx"), ("Date", "Mon, 07 Dec 2026 10:00:00 GMT"), ("Content-Type", "text/plain")],
        [("content-length", "3"), ("X-Mixed-Case", "Value With Spaces"), ("x-utf8", "caf\u{E9}")],
        [("Set-Cookie", "a=1"), ("set-cookie", "b=2"), ("x-empty", "")],
        [
            ("Connection", "close"), ("Keep-Alive", "timeout=5"), ("Transfer-Encoding", "chunked"), ("UPGRADE", "h2c"),
            ("Proxy-Connection", "x"), ("x-after", "1"),
        ],
        [("grpc-status", "0"), ("grpc-message", "ok"), ("TE", "trailers"), ("Trailer", "x")],
        [("connections", "not one"), ("upgrade-insecure-requests", "1"), ("keep-alives", "2")],
    ]

    @Test("response heads and trailers become the same header blocks as through NIO's codec", arguments: fieldSets)
    func headerBlocksMatchNIOs(_ fields: [(String, String)]) throws {
        let headers = HTTPHeaders(fields)
        for status in [HTTPResponseStatus.ok, .continue, .notFound, .custom(code: 599, reasonPhrase: "x")] {
            let head = HTTPServerResponsePart.head(HTTPResponseHead(version: .http2, status: status, headers: headers))
            let ours = try Self.block(of: head, through: HTTP2ServerStreamCodec())
            let nios = try Self.block(of: head, through: HTTP2FramePayloadToHTTP1ServerCodec())
            #expect(ours == nios)
            #expect(ours.first == ":status: \(status.code)")
        }
        let trailers = HTTPServerResponsePart.end(headers)
        let ours = try Self.block(of: trailers, through: HTTP2ServerStreamCodec())
        #expect(ours == (try Self.block(of: trailers, through: HTTP2FramePayloadToHTTP1ServerCodec())))
        #expect(ours.last == "END_STREAM")
    }

    @Test("a name is lowercased as ASCII, and not copied when it has no capital")
    func asciiLowercasing() {
        #expect(HTTP2ServerStreamCodec.lowercased("Content-Type") == "content-type")
        #expect(
            HTTP2ServerStreamCodec.lowercased("X-ABCDEFGHIJKLMNOPQRSTUVWXYZ-@[`{")
                == "x-abcdefghijklmnopqrstuvwxyz-@[`{")
        #expect(HTTP2ServerStreamCodec.lowercased("already-lower") == "already-lower")
        #expect(HTTP2ServerStreamCodec.lowercased("") == "")
    }

    @Test("through the proxy: an HTTP/1.1 upstream's whole answer arrives as HEADERS and one DATA frame")
    func throughTheProxy() async throws {
        try await withUpstreams(["a"]) { upstreams in
            try await ProxyHarness.withProxy(config: ProxyFramingTests.catalog(port: upstreams[0].port)) { proxy in
                // `/close` answers `bye` in one write: head, body and end reach the proxy in one read.
                let responses = try await h2Exchange(
                    port: proxy.outboundPort, [H2Request(path: "/close", authority: "catalog")])
                #expect(responses.first?.status == 200)
                #expect(responses.first?.body == "bye")
                #expect(responses.first?.dataFrames == [H2DataFrame(bytes: 3, endStream: true)])
            }
        }
    }
}
