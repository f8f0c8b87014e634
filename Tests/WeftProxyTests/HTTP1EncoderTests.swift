import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import WeftProxy

/// `HTTP1ResponseEncoder` and `HTTP1ClientCodec` (through `HTTP1RequestEncoder`) write the bytes NIO's encoders
/// write (the request side with `automaticallySetFramingHeaders` off, as the proxy used it, and NIO's request header
/// validator), and refuse what the validator refused: each case runs through both and the outputs are compared.
@Suite("HTTP/1.1 encoders: NIO's bytes and checks, one write per head")
struct HTTP1EncoderTests {
    /// Everything `parts` make on a channel with `handlers`, concatenated; the error each write failed with.
    private static func encode<Part>(
        _ parts: [Part], through handlers: [any ChannelHandler]
    ) throws -> (bytes: String, failures: [String]) {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandlers(handlers)
        var failures: [String] = []
        for part in parts {
            let promise = channel.eventLoop.makePromise(of: Void.self)
            channel.write(part, promise: promise)
            promise.futureResult.whenFailure { failures.append("\($0)") }
        }
        channel.flush()
        try? channel.throwIfErrorCaught()
        var bytes = ""
        while let data = try channel.readOutbound(as: IOData.self) {
            guard case .byteBuffer(let buffer) = data else {
                bytes += "<file>"
                continue
            }
            bytes += String(buffer: buffer)
        }
        _ = try? channel.finish()
        return (bytes, failures)
    }

    private static func headers(_ fields: [(String, String)]) -> HTTPHeaders {
        HTTPHeaders(fields)
    }

    static let responses: [(String, [HTTPServerResponsePart])] = [
        (
            "content-length wins over transfer-encoding",
            [
                .head(
                    HTTPResponseHead(
                        version: .http1_1, status: .ok,
                        headers: headers([
                            ("Content-Length", "2"), ("transfer-encoding", "chunked"), ("x-a", "1\t2"),
                        ])
                    )),
                .body(.byteBuffer(ByteBuffer(string: "ok"))), .end(nil),
            ]
        ),
        (
            "HTTP/1.1 without framing is chunked, empty chunks are skipped, trailers end it",
            [
                .head(HTTPResponseHead(version: .http1_1, status: .created, headers: headers([("a", "b")]))),
                .body(.byteBuffer(ByteBuffer(string: "hello"))), .body(.byteBuffer(ByteBuffer())),
                .body(.byteBuffer(ByteBuffer(repeating: UInt8(ascii: "x"), count: 4097))),
                .end(headers([("grpc-status", "0"), ("grpc-message", "")])),
            ]
        ),
        (
            "chunked without trailers",
            [
                .head(HTTPResponseHead(version: .http1_1, status: .ok)),
                .body(.byteBuffer(ByteBuffer(string: "0123456789abcdef"))), .end(nil),
            ]
        ),
        (
            "204 and 304 lose their framing fields",
            [
                .head(
                    HTTPResponseHead(
                        version: .http1_1, status: .noContent,
                        headers: headers([("content-length", "0"), ("Transfer-Encoding", "chunked")]))),
                .end(nil),
                .head(
                    HTTPResponseHead(
                        version: .http1_1, status: .notModified, headers: headers([("content-length", "10")]))),
                .end(nil),
            ]
        ),
        (
            "HTTP/1.0 without framing is not chunked",
            [
                .head(HTTPResponseHead(version: .http1_0, status: .ok, headers: headers([("connection", "close")]))),
                .body(.byteBuffer(ByteBuffer(string: "raw"))), .end(nil),
            ]
        ),
        (
            "a custom reason phrase, a 1xx, a three-digit code with no known reason",
            [
                .head(HTTPResponseHead(version: .http1_1, status: .continue)),
                .head(
                    HTTPResponseHead(
                        version: .http1_1, status: .custom(code: 299, reasonPhrase: "Fine Thanks"),
                        headers: headers([("content-length", "0")]))),
                .end(nil),
                .head(
                    HTTPResponseHead(
                        version: .http1_1, status: HTTPResponseStatus(statusCode: 599),
                        headers: headers([("content-length", "0")]))),
                .end(nil),
            ]
        ),
        (
            "obs-text in a value",
            [
                .head(
                    HTTPResponseHead(
                        version: .http1_1, status: .ok,
                        headers: headers([("content-length", "0"), ("x-name", "caf\u{e9}")]))), .end(nil),
            ]
        ),
    ]

    @Test(arguments: Self.responses.indices)
    func responsesAreWrittenAsNIOWritesThem(_ index: Int) throws {
        let (name, parts) = Self.responses[index]
        let ours = try Self.encode(parts, through: [HTTP1ResponseEncoder()])
        let nio = try Self.encode(parts, through: [HTTPResponseEncoder()])
        #expect(ours.bytes == nio.bytes, "\(name)")
        #expect(ours.failures.isEmpty && nio.failures.isEmpty, "\(name)")
        #expect(!ours.bytes.isEmpty)
    }

    static let requests: [(String, [HTTPClientRequestPart])] = [
        (
            "a GET",
            [
                .head(
                    HTTPRequestHead(
                        version: .http1_1, method: .GET, uri: "/items?a=1&b=%20",
                        headers: headers([("Host", "catalog"), ("accept", "*/*")]))), .end(nil),
            ]
        ),
        (
            "a chunked POST with trailers, as the proxy frames it",
            [
                .head(
                    HTTPRequestHead(
                        version: .http1_1, method: .POST, uri: "/upload",
                        headers: headers([("host", "a"), ("transfer-encoding", "chunked")]))),
                .body(.byteBuffer(ByteBuffer(string: "part one"))),
                .body(.byteBuffer(ByteBuffer(repeating: 0, count: 300))), .end(headers([("x-sum", "42")])),
            ]
        ),
        (
            "a POST with a length: no chunking, nothing added",
            [
                .head(
                    HTTPRequestHead(
                        version: .http1_1, method: .POST, uri: "/p", headers: headers([("content-length", "3")]))),
                .body(.byteBuffer(ByteBuffer(string: "abc"))), .end(nil),
            ]
        ),
        (
            "a body without framing fields is written raw (the proxy's framing is not second-guessed)",
            [
                .head(HTTPRequestHead(version: .http1_1, method: .PUT, uri: "/raw")),
                .body(.byteBuffer(ByteBuffer(string: "raw"))), .end(nil),
            ]
        ),
        (
            "HTTP/1.0, a custom method, absolute and authority forms",
            [
                .head(HTTPRequestHead(version: .http1_0, method: .RAW(value: "PURGE"), uri: "http://a:80/x")),
                .end(nil),
                .head(HTTPRequestHead(version: .http1_1, method: .CONNECT, uri: "example.com:443")), .end(nil),
            ]
        ),
    ]

    @Test(arguments: Self.requests.indices)
    func requestsAreWrittenAsNIOWritesThem(_ index: Int) throws {
        let (name, parts) = Self.requests[index]
        var configuration = HTTPRequestEncoder.Configuration()
        configuration.automaticallySetFramingHeaders = false
        let ours = try Self.encode(parts, through: [HTTP1ClientCodec(limits: NIOHTTPDecoderLimitConfiguration())])
        let nio = try Self.encode(
            parts, through: [HTTPRequestEncoder(configuration: configuration), NIOHTTPRequestHeadersValidator()])
        #expect(ours.bytes == nio.bytes, "\(name)")
        #expect(ours.failures.isEmpty && nio.failures.isEmpty, "\(name)")
        #expect(!ours.bytes.isEmpty)
    }

    static let invalidRequests: [(String, HTTPRequestHead)] = [
        (
            "CRLF in a value",
            HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: headers([("a", "b\r\nx: y")]))
        ),
        (
            "NUL in a value",
            HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: headers([("a", "b\0")]))
        ),
        (
            "a space in a name",
            HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: headers([("a b", "c")]))
        ),
        (
            "a colon in a name",
            HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: headers([("a:", "c")]))
        ),
        ("a space in the target", HTTPRequestHead(version: .http1_1, method: .GET, uri: "/a b")),
        ("LF in the target", HTTPRequestHead(version: .http1_1, method: .GET, uri: "/a\nGET /b")),
        ("raw UTF-8 in the target", HTTPRequestHead(version: .http1_1, method: .GET, uri: "/caf\u{e9}")),
        ("a space in the method", HTTPRequestHead(version: .http1_1, method: .RAW(value: "GET /x"), uri: "/")),
    ]

    @Test(arguments: Self.invalidRequests.indices)
    func invalidRequestHeadsAreRefusedAsNIORefusesThem(_ index: Int) throws {
        let (name, head) = Self.invalidRequests[index]
        var configuration = HTTPRequestEncoder.Configuration()
        configuration.automaticallySetFramingHeaders = false
        let ours = try Self.encode(
            [HTTPClientRequestPart.head(head)], through: [HTTP1ClientCodec(limits: NIOHTTPDecoderLimitConfiguration())])
        let nio = try Self.encode(
            [HTTPClientRequestPart.head(head)],
            through: [HTTPRequestEncoder(configuration: configuration), NIOHTTPRequestHeadersValidator()])
        #expect(ours.bytes.isEmpty, "\(name): \(ours.bytes)")
        #expect(ours.failures == ["\(HTTPParserError.invalidHeaderToken)"], "\(name)")
        #expect(ours.failures == nio.failures, "\(name)")
    }

    @Test func invalidResponseFieldsAndTrailersAreNotWritten() throws {
        let badHead = try Self.encode(
            [
                HTTPServerResponsePart.head(
                    HTTPResponseHead(version: .http1_1, status: .ok, headers: Self.headers([("x", "a\rb")])))
            ], through: [HTTP1ResponseEncoder()])
        #expect(badHead.bytes.isEmpty)
        #expect(badHead.failures == ["\(HTTPParserError.invalidHeaderToken)"])
        let badTrailers = try Self.encode(
            [
                HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok)),
                .end(Self.headers([("grpc-status", "0\n")])),
            ], through: [HTTP1ResponseEncoder()])
        #expect(badTrailers.bytes == "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n", "\(badTrailers.bytes)")
        #expect(badTrailers.failures == ["\(HTTPParserError.invalidHeaderToken)"])
    }

    /// The word-at-a-time field value check agrees with the byte rule for every byte value at every offset of
    /// a value long enough to take two words and a tail, and around tabs and bytes above 0x7F.
    @Test(arguments: [7, 8, 9, 16, 17, 23])
    func fieldValueCheckMatchesTheByteRuleAtEveryOffset(_ length: Int) {
        let allowed = { (byte: UInt8) in byte == 0x09 || (byte >= 0x20 && byte != 0x7F) }
        var wrong: [String] = []
        var refused = 0
        for fill in [UInt8(ascii: "a"), 0x09, 0xC3, 0x7E, 0x20] {
            for offset in 0..<length {
                for byte in 0...UInt8.max {
                    var bytes = [UInt8](repeating: fill, count: length)
                    bytes[offset] = byte
                    let value = String(decoding: bytes, as: UTF8.self)
                    let expected = value.utf8.allSatisfy(allowed)
                    if !expected { refused += 1 }
                    if HTTP1Head.isFieldValue(value) != expected {
                        wrong.append("\(fill)/\(byte)@\(offset)")
                    }
                }
            }
        }
        #expect(wrong.isEmpty, "\(wrong.prefix(20))")
        #expect(refused == 5 * length * 32, "the 31 controls but HTAB, and DEL, at each offset of each fill")
    }

    /// The token bitmap holds RFC 9110's `tchar` and nothing else.
    @Test func tokenBytesAreExactlyRFC9110Tchar() {
        let tchar = Set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)
        for byte in 0...UInt8.max {
            #expect(HTTP1Head.isTokenByte(byte) == tchar.contains(byte), "byte \(byte)")
        }
        #expect(HTTP1Head.isToken("x-request-id"))
        #expect(!HTTP1Head.isToken("x request"))
        #expect(!HTTP1Head.isToken(""))
    }
}
