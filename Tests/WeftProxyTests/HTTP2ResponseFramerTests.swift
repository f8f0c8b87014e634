import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOHTTP2
import Testing

@testable import WeftProxy

/// `HTTP2ResponseFramer`: a response's last body chunk and its end in one DATA frame, nothing held past a flush;
/// header blocks as NIO's codec makes them. And the other way, `HTTPRequestHead(http2Block:endStream:)`: the
/// request NIO's codec made of a header block. (End to end, `ProxyProtocolTests`' gRPC bidi call, strict ping-pong
/// through the proxy, would hang if a flush left a message behind.)
@Suite("HTTP/2 downstream framing: the last DATA frame carries END_STREAM; heads as NIO's codec makes them")
struct HTTP2ResponseFramerTests {
    /// Feeds `parts` to `framer` (nil: a flush) and describes the frames it makes, as "HEADERS 200", "DATA ok END",
    /// "TRAILERS END".
    private static func frames(_ framer: inout HTTP2ResponseFramer, _ parts: [HTTPServerResponsePart?]) -> [String] {
        var payloads: [HTTP2Frame.FramePayload] = []
        for part in parts {
            guard let part else {
                if let held = framer.flush() {
                    payloads.append(held)
                }
                continue
            }
            let made = framer.frames(for: part)
            payloads += [made.first, made.second].compactMap { $0 }
        }
        return payloads.map { payload in
            switch payload {
            case .headers(let headers):
                let end = headers.endStream ? " END" : ""
                return headers.headers.first(name: ":status").map { "HEADERS \($0)\(end)" } ?? "TRAILERS\(end)"
            case .data(let data):
                guard case .byteBuffer(let buffer) = data.data else {
                    return "DATA (file)"
                }
                return "DATA \(String(buffer: buffer))\(data.endStream ? " END" : "")"
            default:
                return "\(payload)"
            }
        }
    }

    private static let head = HTTPServerResponsePart.head(HTTPResponseHead(version: .http2, status: .ok))
    private static func body(_ text: String) -> HTTPServerResponsePart { .body(.byteBuffer(ByteBuffer(string: text))) }

    @Test("head, body, end written together: HEADERS, then one DATA frame with END_STREAM")
    func mergesTheLastChunkWithTheEnd() {
        var framer = HTTP2ResponseFramer()
        #expect(Self.frames(&framer, [Self.head, Self.body("ok"), .end(nil), nil]) == ["HEADERS 200", "DATA ok END"])
    }

    @Test("a flush sends the held chunk: a streamed body is not delayed; only the last chunk carries the end")
    func flushReleasesTheHeldChunk() {
        var framer = HTTP2ResponseFramer()
        #expect(Self.frames(&framer, [Self.head, Self.body("a"), nil]) == ["HEADERS 200", "DATA a"])
        #expect(Self.frames(&framer, [Self.body("b"), Self.body("c"), .end(nil), nil]) == ["DATA b", "DATA c END"])
    }

    @Test("trailers and body-less responses go out as before")
    func trailersAndNoBody() {
        var framer = HTTP2ResponseFramer()
        #expect(
            Self.frames(&framer, [Self.head, Self.body("message"), .end(HTTPHeaders([("grpc-status", "0")])), nil])
                == ["HEADERS 200", "DATA message", "TRAILERS END"])
        #expect(Self.frames(&framer, [Self.head, .end(nil), nil]) == ["HEADERS 200", "DATA  END"])
    }

    @Test("a reset's flush lets the held chunk go; a dropped chunk is gone")
    func heldChunkOnResetAndDrop() {
        var framer = HTTP2ResponseFramer()
        #expect(Self.frames(&framer, [Self.head, Self.body("partial")]) == ["HEADERS 200"])
        #expect(Self.frames(&framer, [nil]) == ["DATA partial"])
        #expect(Self.frames(&framer, [Self.body("lost")]).isEmpty)
        framer.drop()
        #expect(Self.frames(&framer, [nil]).isEmpty)
    }

    /// The header block (names and values, in order) that `part` becomes through NIO's codec.
    private static func niosBlock(of part: HTTPServerResponsePart) throws -> [String] {
        let handler = HTTP2FramePayloadToHTTP1ServerCodec()
        let channel = EmbeddedChannel(handler: handler)
        channel.write(part, promise: nil)
        channel.flush()
        guard case .headers(let headers) = try channel.readOutbound(as: HTTP2Frame.FramePayload.self) else {
            Issue.record("no HEADERS frame for \(part)")
            return []
        }
        _ = try channel.finish()
        return Self.describe(headers)
    }

    /// The header block `part` becomes here.
    private static func oursBlock(of part: HTTPServerResponsePart) -> [String] {
        var framer = HTTP2ResponseFramer()
        guard case .headers(let headers) = framer.frames(for: part).second else {
            Issue.record("no HEADERS frame for \(part)")
            return []
        }
        return Self.describe(headers)
    }

    private static func describe(_ headers: HTTP2Frame.FramePayload.Headers) -> [String] {
        headers.headers.map {
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
            let ours = Self.oursBlock(of: head)
            let nios = try Self.niosBlock(of: head)
            #expect(ours == nios)
            #expect(ours.first == ":status: \(status.code)")
        }
        let trailers = HTTPServerResponsePart.end(headers)
        let ours = Self.oursBlock(of: trailers)
        #expect(ours == (try Self.niosBlock(of: trailers)))
        #expect(ours.last == "END_STREAM")
    }

    @Test("the :status value is the code's digits, for every code")
    func statusValues() {
        for code in UInt(0)...1000 {
            #expect(HTTP2ResponseFramer.statusValue(code) == String(code))
        }
    }

    @Test("a name is lowercased as ASCII, and not copied when it has no capital")
    func asciiLowercasing() {
        #expect(HTTP2ResponseFramer.lowercased("Content-Type") == "content-type")
        #expect(
            HTTP2ResponseFramer.lowercased("X-ABCDEFGHIJKLMNOPQRSTUVWXYZ-@[`{")
                == "x-abcdefghijklmnopqrstuvwxyz-@[`{")
        #expect(HTTP2ResponseFramer.lowercased("already-lower") == "already-lower")
        #expect(HTTP2ResponseFramer.lowercased("") == "")
        // The common names come from a table: each in any case, and names of their lengths that are not them.
        let common = [
            "date", "etag", "vary", "server", "location", "set-cookie", "content-type", "cache-control",
            "last-modified", "accept-ranges", "content-length", "content-encoding",
        ]
        for name in common {
            #expect(HTTP2ResponseFramer.lowercased(name.uppercased()) == name)
            let capitalized = name.split(separator: "-").map { $0.prefix(1).uppercased() + $0.dropFirst() }
            #expect(HTTP2ResponseFramer.lowercased(capitalized.joined(separator: "-")) == name)
            let other = "X" + name.dropFirst()
            #expect(HTTP2ResponseFramer.lowercased(other) == "x" + name.dropFirst())
        }
    }

    /// Request header blocks: methods with and without a body, with and without `content-length` and `host`,
    /// extra fields in order, repeated fields.
    static let requestBlocks: [[(String, String)]] = {
        var blocks: [[(String, String)]] = []
        for method in ["GET", "HEAD", "DELETE", "TRACE", "POST", "PUT", "PATCH", "OPTIONS", "QUERY"] {
            let base = [(":method", method), (":scheme", "http"), (":path", "/p?q=1"), (":authority", "catalog:80")]
            blocks.append(base)
            blocks.append(base + [("content-length", "5"), ("x-a", "1")])
            blocks.append(base + [("host", "other"), ("cookie", "a=1"), ("cookie", "b=2"), ("te", "trailers")])
            blocks.append(
                [(":authority", "catalog"), (":path", "/"), (":method", method), (":scheme", "https")]
                    + [("accept", "*/*"), ("content-length", "0")])
        }
        return blocks
    }()

    @Test("a request header block becomes the head NIO's codec made of it, with and without END_STREAM")
    func requestHeadsMatchNIOs() throws {
        for fields in Self.requestBlocks {
            for endStream in [true, false] {
                let channel = EmbeddedChannel(handler: HTTP2FramePayloadToHTTP1ServerCodec())
                try channel.writeInbound(
                    HTTP2Frame.FramePayload.headers(.init(headers: .init(fields), endStream: endStream)))
                guard case .head(let nios) = try channel.readInbound(as: HTTPServerRequestPart.self) else {
                    Issue.record("NIO made no head of \(fields)")
                    continue
                }
                _ = try channel.finish(acceptAlreadyClosed: true)
                let ours = HTTPRequestHead(http2Block: .init(fields), endStream: endStream)
                #expect(ours == nios, "\(fields), END_STREAM \(endStream)")
                #expect(
                    ours.map { Array($0.headers) }.map { $0.map { "\($0.name): \($0.value)" } }
                        == Array(nios.headers).map { "\($0.name): \($0.value)" })
            }
        }
        // No :path (a CONNECT, which the proxy does not offer over HTTP/2): no head.
        #expect(HTTPRequestHead(http2Block: [":method": "CONNECT", ":authority": "x:443"], endStream: false) == nil)
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
