import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP1
import NIOHTTP2
import Testing

@testable import WeftProxy

/// The upstream HTTP/2 leg's framing (`HTTP2RequestFramer`, `HTTPResponseHead(http2Block:requestMethod:endStream:)`)
/// against NIO's `HTTP2FramePayloadToHTTP1ClientCodec`, which the leg went through before: the same frames for the
/// same request parts, the same response heads for the same blocks.
@Suite("HTTP/2 upstream framing: request frames and response heads as NIO's client codec makes them")
struct HTTP2RequestFramerTests {
    /// A frame as text: "HEADERS <fields> END", "DATA <bytes> END", "TRAILERS <fields> END". Pseudo-header fields are
    /// sorted (their order is free; ours puts `:method` first, NIO's `:path`), regular fields keep their order.
    private static func describe(_ payload: HTTP2Frame.FramePayload, trailers: Bool = false) -> String {
        switch payload {
        case .headers(let headers):
            let pseudo = headers.headers.filter { $0.name.hasPrefix(":") }.map { "\($0.name)=\($0.value)" }.sorted()
            let regular = headers.headers.filter { !$0.name.hasPrefix(":") }.map { "\($0.name)=\($0.value)" }
            let kind = pseudo.isEmpty ? "TRAILERS" : "HEADERS"
            return "\(kind) \((pseudo + regular).joined(separator: ","))\(headers.endStream ? " END" : "")"
        case .data(let data):
            guard case .byteBuffer(let buffer) = data.data else {
                return "DATA (file)"
            }
            return "DATA \(String(buffer: buffer))\(data.endStream ? " END" : "")"
        default:
            return "\(payload)"
        }
    }

    /// `parts` (nil: a flush) through NIO's client codec.
    private static func nios(_ parts: [HTTPClientRequestPart?]) throws -> [String] {
        let channel = EmbeddedChannel(handler: HTTP2FramePayloadToHTTP1ClientCodec(httpProtocol: .http))
        var frames: [String] = []
        for part in parts {
            if let part {
                channel.write(part, promise: nil)
            } else {
                channel.flush()
            }
            while let payload = try channel.readOutbound(as: HTTP2Frame.FramePayload.self) {
                frames.append(Self.describe(payload))
            }
        }
        _ = try channel.finish(acceptAlreadyClosed: true)
        return frames
    }

    private static func ours(_ parts: [HTTPClientRequestPart?]) -> [String] {
        var framer = HTTP2RequestFramer()
        var frames: [String] = []
        for part in parts {
            guard let part else {
                if let held = framer.flush() {
                    frames.append(Self.describe(held))
                }
                continue
            }
            let made = framer.frames(for: part)
            frames += [made.first, made.second].compactMap { $0 }.map { Self.describe($0) }
        }
        return frames
    }

    static let heads: [HTTPRequestHead] = {
        var heads: [HTTPRequestHead] = []
        let fieldSets: [[(String, String)]] = [
            [("host", "catalog")],
            [("Host", "catalog:8080"), ("User-Agent", "curl/8"), ("Accept", "*/*")],
            [("x-first", "1"), ("host", "catalog"), ("X-Mixed-Case", "Value"), ("cookie", "a=1"), ("cookie", "b=2")],
            [
                ("host", "catalog"), ("Connection", "keep-alive"), ("Keep-Alive", "timeout=5"),
                ("Transfer-Encoding", "chunked"), ("Upgrade", "h2c"), ("Proxy-Connection", "x"), ("x-after", "1"),
            ],
            [("host", "catalog"), ("content-type", "application/grpc"), ("te", "trailers"), ("x-empty", "")],
            [("host", "catalog"), ("content-length", "5"), ("connections", "not one"), ("keep-alives", "2")],
        ]
        for method in [HTTPMethod.GET, .HEAD, .POST, .PUT, .DELETE, .OPTIONS] {
            for fields in fieldSets {
                heads.append(
                    HTTPRequestHead(version: .http1_1, method: method, uri: "/p?q=1", headers: HTTPHeaders(fields)))
            }
        }
        return heads
    }()

    private static func body(_ text: String) -> HTTPClientRequestPart { .body(.byteBuffer(ByteBuffer(string: text))) }

    @Test("request parts become the frames NIO's codec makes: a GET is one HEADERS frame with END_STREAM")
    func requestFramesMatchNIOs() throws {
        for head in Self.heads {
            let sequences: [[HTTPClientRequestPart?]] = [
                [.head(head), .end(nil), nil],
                [.head(head), nil, .end(nil), nil],
                [.head(head), Self.body("ab"), Self.body("cd"), .end(nil), nil],
                [.head(head), Self.body("ab"), nil, Self.body("cd"), nil, .end(nil), nil],
                [.head(head), Self.body("msg"), .end(HTTPHeaders([("Grpc-Status", "0")])), nil],
                [.head(head), .end(HTTPHeaders([("x-t", "1")])), nil],
            ]
            for parts in sequences {
                #expect(Self.ours(parts) == (try Self.nios(parts)), "\(head) \(parts)")
            }
        }
        let get = Self.ours([.head(Self.heads[0]), .end(nil)])
        #expect(get == ["HEADERS :authority=catalog,:method=GET,:path=/p?q=1,:scheme=http END"])
    }

    @Test("te goes upstream only as trailers (any other value is an HTTP/2 protocol error)")
    func teOnlyAsTrailers() {
        let head = HTTPRequestHead(
            version: .http1_1, method: .GET, uri: "/",
            headers: HTTPHeaders([("host", "a"), ("TE", "gzip"), ("x", "1")]))
        #expect(!HTTP2RequestFramer.block(head).contains(name: "te"))
        let grpc = HTTPRequestHead(
            version: .http1_1, method: .POST, uri: "/",
            headers: HTTPHeaders([("host", "a"), ("te", "trailers")]))
        #expect(HTTP2RequestFramer.block(grpc).first(name: "te") == "trailers")
    }

    /// Response header blocks: statuses with and without a body, with and without `content-length`.
    static let responseBlocks: [[(String, String)]] = {
        var blocks: [[(String, String)]] = []
        for status in ["200", "204", "304", "404", "103", "599"] {
            blocks.append([(":status", status)])
            blocks.append([(":status", status), ("content-length", "3"), ("x-a", "1")])
            blocks.append([(":status", status), ("set-cookie", "a=1"), ("set-cookie", "b=2"), ("grpc-status", "0")])
        }
        return blocks
    }()

    @Test(
        "a response header block becomes the head NIO's codec made of it, for GET and HEAD, with and without END_STREAM"
    )
    func responseHeadsMatchNIOs() throws {
        for fields in Self.responseBlocks {
            for method in [HTTPMethod.GET, .HEAD, .POST] {
                for endStream in [true, false] where !(endStream && fields[0].1.hasPrefix("1")) {
                    let channel = EmbeddedChannel(handler: HTTP2FramePayloadToHTTP1ClientCodec(httpProtocol: .http))
                    let request = HTTPRequestHead(
                        version: .http1_1, method: method, uri: "/", headers: ["host": "a"])
                    try channel.writeOutbound(HTTPClientRequestPart.head(request))
                    try channel.writeOutbound(HTTPClientRequestPart.end(nil))
                    try channel.writeInbound(
                        HTTP2Frame.FramePayload.headers(.init(headers: HPACKHeaders(fields), endStream: endStream)))
                    guard case .head(let nios) = try channel.readInbound(as: HTTPClientResponsePart.self) else {
                        Issue.record("NIO made no head of \(fields)")
                        continue
                    }
                    _ = try channel.finish(acceptAlreadyClosed: true)
                    let ours = HTTPResponseHead(
                        http2Block: HPACKHeaders(fields), requestMethod: method, endStream: endStream)
                    #expect(ours == nios, "\(fields) \(method) END_STREAM \(endStream)")
                    #expect(
                        ours.map { Array($0.headers).map { "\($0.name): \($0.value)" } }
                            == Array(nios.headers).map { "\($0.name): \($0.value)" })
                }
            }
        }
    }

    @Test("a block without one three-digit :status, or with another pseudo-header field, is no response")
    func malformedResponseBlocks() {
        for fields in [
            [("x-a", "1")], [(":status", "20")], [(":status", "2000")], [(":status", "abc")], [(":status", "099")],
            [(":status", "200"), (":status", "200")], [(":status", "200"), (":path", "/")],
        ] {
            #expect(
                HTTPResponseHead(http2Block: HPACKHeaders(fields), requestMethod: .GET, endStream: true) == nil,
                "\(fields)")
        }
    }
}
