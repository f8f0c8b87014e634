import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import WeftProxy

/// `HTTP1Parser` (Weft's HTTP/1.1 parser: `HTTP1RequestDecoder` downstream, `HTTP1ClientCodec` upstream) against
/// NIO's `HTTPRequestDecoder` and `HTTPResponseDecoder` (llhttp), which it replaces: the same parts and the same
/// verdict on generated streams of requests and of responses, valid and broken, whole and split at random points.
/// Two differences are allowed, both refusals (`refusedEarlier`, `hasCRInStatusLine`); anything NIO's decoders
/// accept must come out the same. Then cases: pipelining, limits, tunnels' leftover bytes, response framing. (End
/// to end, `ProxySmugglingTests` and `ProxyFramingTests` send such requests through the proxy.)
@Suite("HTTP/1.1 parsing: Weft's parser and NIO's decoders agree")
struct HTTP1ParserTests {
    typealias Generator = HTTP2RequestBlockTests.Generator

    /// What a decoder made of a byte stream: its parts (consecutive body parts joined), then how it stopped.
    struct Outcome: Equatable, CustomStringConvertible {
        enum Part: Equatable {
            case head(method: String, uri: String, version: String, fields: [String])
            case body([UInt8])
            case end(trailers: [String]?)
        }

        enum Verdict: Equatable {
            case accepted
            case overflow
            case refused
        }

        var parts: [Part] = []
        var verdict = Verdict.accepted

        mutating func add(_ part: HTTPServerRequestPart) {
            switch part {
            case .head(let head):
                self.parts.append(
                    .head(
                        method: head.method.rawValue, uri: head.uri, version: "\(head.version)",
                        fields: head.headers.map { "\($0.name): \($0.value)" }))
            case .body(let buffer):
                if case .body(let earlier) = self.parts.last {
                    self.parts[self.parts.count - 1] = .body(earlier + Array(buffer.readableBytesView))
                } else {
                    self.parts.append(.body(Array(buffer.readableBytesView)))
                }
            case .end(let trailers):
                self.parts.append(.end(trailers: trailers.map { $0.map { "\($0.name): \($0.value)" } }))
            }
        }

        mutating func add(_ part: HTTPClientResponsePart) {
            switch part {
            case .head(let head):
                self.parts.append(
                    .head(
                        method: "", uri: "\(head.status.code)", version: "\(head.version)",
                        fields: head.headers.map { "\($0.name): \($0.value)" }))
            case .body(let buffer):
                self.add(HTTPServerRequestPart.body(buffer))
            case .end(let trailers):
                self.add(HTTPServerRequestPart.end(trailers))
            }
        }

        mutating func failed(_ error: any Error) {
            self.verdict = (error as? HTTPParserError) == .headerOverflow ? .overflow : .refused
        }

        var description: String { "\(self.verdict) after \(self.parts)" }
    }

    static let limits: NIOHTTPDecoderLimitConfiguration = {
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderFieldCount = 12
        limits.maxHeaderFieldSize = 200
        limits.maxHeaderListSize = 400
        return limits
    }()

    /// Feeds `chunks` to a channel with `handler` (after writing `requests` through it), closes it, and collects
    /// what comes out.
    static func run(
        _ handler: any ChannelHandler, _ chunks: [[UInt8]], requests: [HTTPMethod] = [], close: Bool = true
    ) throws -> Outcome {
        let channel = EmbeddedChannel(handler: handler)
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        for method in requests {
            try channel.writeOutbound(
                HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: method, uri: "/")))
            try channel.writeOutbound(HTTPClientRequestPart.end(nil))
        }
        var outcome = Outcome()
        let responses = handler is HTTP1ClientCodec || handler is ByteToMessageHandler<HTTPResponseDecoder>
        func collect() throws {
            if responses {
                while let part = try channel.readInbound(as: HTTPClientResponsePart.self) {
                    outcome.add(part)
                }
            } else {
                while let part = try channel.readInbound(as: HTTPServerRequestPart.self) {
                    outcome.add(part)
                }
            }
        }
        for chunk in chunks {
            do {
                try channel.writeInbound(ByteBuffer(bytes: chunk))
            } catch {
                try collect()
                outcome.failed(error)
                return outcome
            }
            try collect()
        }
        if close {
            channel.pipeline.fireChannelInactive()
            do {
                try channel.throwIfErrorCaught()
            } catch {
                try collect()
                outcome.failed(error)
                return outcome
            }
            try collect()
        }
        return outcome
    }

    static func nio(_ bytes: [UInt8]) throws -> Outcome {
        try Self.run(
            ByteToMessageHandler(
                HTTPRequestDecoder(
                    leftOverBytesStrategy: .forwardBytes, informationalResponseStrategy: .drop,
                    limitConfiguration: Self.limits)), [bytes])
    }

    static func chunks(_ bytes: [UInt8], splits: [Int]) -> [[UInt8]] {
        var chunks: [[UInt8]] = []
        var start = 0
        for split in splits.sorted() where split > start && split < bytes.count {
            chunks.append(Array(bytes[start..<split]))
            start = split
        }
        chunks.append(Array(bytes[start...]))
        return chunks
    }

    static func weft(_ bytes: [UInt8], splits: [Int] = []) throws -> Outcome {
        try Self.run(HTTP1RequestDecoder(limits: Self.limits), Self.chunks(bytes, splits: splits))
    }

    // MARK: Generated streams

    static let fieldLines = [
        "Accept: */*", "X-A: b c", "User-Agent: t/1", "Connection: keep-alive", "Connection: close", "X-Empty:",
        "X-Tab:\tv\t", "X-Utf8: caf\u{E9}", "x-lower:v", "X-Trail:  v  ", "Cookie: a=b; c=d", "Expect: 100-continue",
    ]

    static let framingLines = [
        "Content-Length: 5", "Content-Length: 05", "Content-Length: +5", "Content-Length: 5, 5", "Content-Length: -1",
        "Content-Length: 99999999999999999999999", "Content-Length:", "Transfer-Encoding: chunked",
        "Transfer-Encoding: gzip, chunked", "Transfer-Encoding: chunked, gzip", "Transfer-Encoding: CHUNKED",
        "Transfer-Encoding: gzip", "Transfer-Encoding: identity", "Transfer-Encoding: chunked, chunked",
        "Transfer-Encoding : chunked", " Transfer-Encoding: chunked", "Transfer-Encoding:\tchunked",
        "Connection: upgrade", "Upgrade: websocket", "Connection: keep-alive, Upgrade", "Host: other",
    ]

    static let specialBytes: [UInt8] = [
        0x20, 0x09, 0x0D, 0x0A, 0x00, 0x3A, 0x7F, 0x80, 0xE9, 0x2C, 0x3B, 0x3D, 0x22, 0x41, 0x30, 0x66, 0x01, 0x7C,
        0x5C, 0x7B, 0x3C,
    ]

    /// One request: a start line, `Host`, some fields, and no body, a `Content-Length` one or a chunked one (sizes
    /// in either case, extensions, trailers).
    static func request(_ generator: inout Generator) -> String {
        let method =
            generator.below(4) > 0
            ? generator.pick(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"])
            : generator.pick(["M-SEARCH", "QUERY", "CONNECT", "BREW", "get"])
        let target =
            generator.below(4) > 0
            ? generator.pick(["/", "/a/b?c=d", "/%20x", "*", "http://h/x", "/a;b=c", "/~u", "/a#f", "/[x]", "/a|b"])
            : generator.pick([
                "foo", "?x", "a.b://h/x", "http://a@b@c/", "http://h?q", "HTTP://H:80/", "http:///x", "h:443",
                "u@h:443", "[::1]:443", "*x",
            ])
        let version = generator.pick(["HTTP/1.1", "HTTP/1.1", "HTTP/1.0"])
        let spaces = generator.below(6) == 0 ? "  " : " "
        var lines = ["\(method)\(spaces)\(target)\(spaces)\(version)", "Host: h"]
        for _ in 0..<generator.below(4) {
            lines.append(generator.pick(Self.fieldLines))
        }
        var body = ""
        switch generator.below(3) {
        case 0:
            break
        case 1:
            let payload = String(repeating: "b", count: generator.below(12))
            lines.append("Content-Length: \(payload.utf8.count)")
            body = payload
        default:
            lines.append("Transfer-Encoding: chunked")
            for _ in 0..<generator.below(3) {
                let size = 1 + generator.below(20)
                let hex = String(size, radix: 16, uppercase: generator.below(2) == 0)
                let ext = generator.pick(["", "", ";a", ";a=b", ";a=\"q r\"", "; a = b", ";a=b;c"])
                body += "\(hex)\(ext)\r\n\(String(repeating: "c", count: size))\r\n"
            }
            body += "0\r\n"
            if generator.below(3) == 0 {
                body += "X-Checksum: 1\r\n"
            }
            body += "\r\n"
        }
        return lines.joined(separator: "\r\n") + "\r\n\r\n" + body
    }

    /// A stream of one to three requests with up to three changes: a framing or other line added to a head, a
    /// special byte put in, replacing or deleting one, a line doubled.
    static func stream(_ generator: inout Generator) -> [UInt8] {
        var text = ""
        for _ in 0...generator.below(3) {
            var request = Self.request(&generator)
            if generator.below(2) == 0 {
                var lines = request.components(separatedBy: "\r\n")
                let at = 1 + generator.below(2)
                lines.insert(generator.pick(Self.framingLines + Self.fieldLines), at: min(at, lines.count))
                request = lines.joined(separator: "\r\n")
            }
            text += request
        }
        return Self.mutate(Array(text.utf8), &generator)
    }

    /// Up to three changes: a special byte put in, replacing or deleting one, a line doubled.
    static func mutate(_ bytes: [UInt8], _ generator: inout Generator) -> [UInt8] {
        var bytes = bytes
        for _ in 0..<generator.below(4) {
            let at = generator.below(bytes.count)
            switch generator.below(4) {
            case 0:
                bytes.insert(generator.pick(Self.specialBytes), at: at)
            case 1:
                bytes[at] = generator.pick(Self.specialBytes)
            case 2:
                bytes.remove(at: at)
            default:
                // A line doubled.
                let start = bytes[..<at].lastIndex(of: 0x0A).map { $0 + 1 } ?? 0
                let end = bytes[at...].firstIndex(of: 0x0A).map { $0 + 1 } ?? bytes.count
                bytes.insert(contentsOf: bytes[start..<end], at: start)
            }
        }
        return bytes
    }

    /// Where both refuse a stream and Weft's parser does so earlier within the message that fails (it refuses some
    /// framing at the end of the head, where llhttp has passed the head on): the same messages completed, and
    /// nothing passed on that NIO's decoder did not pass on. Anything NIO accepts must be accepted.
    static func refusedEarlier(_ weft: Outcome, _ nio: Outcome) -> Bool {
        func ends(_ outcome: Outcome) -> Int {
            outcome.parts.count { if case .end = $0 { true } else { false } }
        }
        guard weft.verdict != .accepted, nio.verdict != .accepted, ends(weft) == ends(nio),
            weft.parts.count <= nio.parts.count
        else {
            return false
        }
        for (index, part) in weft.parts.enumerated() where part != nio.parts[index] {
            // A body cut shorter (the refusal came within it).
            guard index == weft.parts.count - 1, case .body(let ours) = part, case .body(let theirs) = nio.parts[index],
                theirs.starts(with: ours)
            else {
                return false
            }
        }
        return true
    }

    @Test("2,000 generated request streams: the same parts and verdict, whole and split at random points")
    func generatedStreams() throws {
        var generator = Generator(state: 0x5EED_0001)
        var differences: [String] = []
        var refused = 0
        for round in 0..<2000 {
            let bytes = Self.stream(&generator)
            let nio = try Self.nio(bytes)
            let weft = try Self.weft(bytes)
            let splits = (0..<generator.below(4)).map { _ in generator.below(bytes.count + 1) }
            let split = try Self.weft(bytes, splits: splits)
            if weft.verdict != .accepted {
                refused += 1
            }
            if weft != nio, !Self.refusedEarlier(weft, nio), differences.count < 12 {
                differences.append(
                    "round \(round) \(String(decoding: bytes, as: UTF8.self).debugDescription):\n  weft \(weft)\n  nio  \(nio)"
                )
            }
            if split != weft, differences.count < 12 {
                differences.append(
                    "round \(round) split at \(splits) \(String(decoding: bytes, as: UTF8.self).debugDescription):\n  split \(split)\n  whole \(weft)"
                )
            }
        }
        #expect(differences.isEmpty, "\(differences.joined(separator: "\n"))")
        // The generator reaches both sides.
        #expect(refused > 200 && refused < 1800, "refused \(refused) of 2000")
    }

    // MARK: Responses

    /// The one place Weft's response parser refuses what llhttp may accept: a CR inside a status line (llhttp lets
    /// some runs of CR through there, depending on what follows).
    static func hasCRInStatusLine(_ bytes: [UInt8]) -> Bool {
        let version = Array("HTTP/".utf8)
        for start in bytes.indices where bytes[start...].starts(with: version) {
            let end = bytes[start...].firstIndex(of: 0x0A) ?? bytes.count
            // A CR before the one that ends the line.
            if bytes[start..<max(start, end - 1)].contains(0x0D) {
                return true
            }
        }
        return false
    }

    static let responseFieldLines = [
        "Content-Type: text/plain", "Server: s/1", "Connection: keep-alive", "Connection: close", "X-Empty:",
        "Content-Length: 3", "Transfer-Encoding: chunked", "Transfer-Encoding: gzip", "Content-Length: 3, 3",
        "Upgrade: websocket", "X-Tab:\tv",
    ]

    /// One response (after a 100 Continue, sometimes) to a request with `method`: a status line, fields, and a
    /// `Content-Length` body, a chunked one, or (the last response only) one that runs until the connection closes.
    static func response(_ generator: inout Generator, method: HTTPMethod, last: Bool) -> String {
        let status = generator.pick([200, 200, 201, 204, 304, 404, 500])
        var text = generator.below(5) == 0 ? "HTTP/1.1 100 Continue\r\n\r\n" : ""
        let reason = generator.pick([" OK", " Whatever It Is", "", " "])
        var lines = ["\(generator.pick(["HTTP/1.1", "HTTP/1.1", "HTTP/1.0"])) \(status)\(reason)"]
        for _ in 0..<generator.below(3) {
            lines.append(generator.pick(Array(Self.responseFieldLines.prefix(5))))
        }
        let hasBody = method != .HEAD && status != 204 && status != 304
        var body = ""
        switch generator.below(last ? 3 : 2) {
        case 0:
            let payload = String(repeating: "r", count: generator.below(12))
            lines.append("Content-Length: \(payload.utf8.count)")
            body = hasBody ? payload : ""
        case 1:
            lines.append("Transfer-Encoding: chunked")
            if hasBody {
                for _ in 0..<generator.below(3) {
                    let size = 1 + generator.below(20)
                    body += "\(String(size, radix: 16))\r\n\(String(repeating: "d", count: size))\r\n"
                }
                body += "0\r\n\r\n"
            }
        default:
            body = hasBody ? String(repeating: "u", count: generator.below(9)) : ""
        }
        text += lines.joined(separator: "\r\n") + "\r\n\r\n" + body
        return text
    }

    static func responseStream(_ generator: inout Generator) -> (methods: [HTTPMethod], bytes: [UInt8]) {
        var methods: [HTTPMethod] = []
        var text = ""
        let count = 1 + generator.below(3)
        for index in 0..<count {
            let method = generator.pick([HTTPMethod.GET, .GET, .POST, .HEAD])
            methods.append(method)
            var response = Self.response(&generator, method: method, last: index == count - 1)
            if generator.below(2) == 0 {
                var lines = response.components(separatedBy: "\r\n")
                let at = 1 + generator.below(2)
                lines.insert(generator.pick(Self.responseFieldLines), at: min(at, lines.count))
                response = lines.joined(separator: "\r\n")
            }
            text += response
        }
        return (methods, Self.mutate(Array(text.utf8), &generator))
    }

    @Test("2,000 generated response streams (HEAD, 1xx, 204, 304, bodies to the close): the same parts and verdict")
    func generatedResponseStreams() throws {
        var generator = Generator(state: 0x5EED_0002)
        var differences: [String] = []
        var refused = 0
        for round in 0..<2000 {
            let (methods, bytes) = Self.responseStream(&generator)
            let nio = try Self.run(
                ByteToMessageHandler(
                    HTTPResponseDecoder(leftOverBytesStrategy: .forwardBytes, limitConfiguration: Self.limits)),
                [bytes], requests: methods)
            let splits = (0..<generator.below(4)).map { _ in generator.below(bytes.count + 1) }
            let weft = try Self.run(
                HTTP1ClientCodec(limits: Self.limits), Self.chunks(bytes, splits: splits), requests: methods)
            if weft.verdict != .accepted {
                refused += 1
            }
            if weft != nio, !Self.refusedEarlier(weft, nio),
                !(weft.verdict != .accepted && Self.hasCRInStatusLine(bytes)),
                differences.count < 12
            {
                differences.append(
                    "round \(round) \(methods) \(String(decoding: bytes, as: UTF8.self).debugDescription):\n  weft \(weft)\n  nio  \(nio)"
                )
            }
        }
        #expect(differences.isEmpty, "\(differences.joined(separator: "\n"))")
        #expect(refused > 200 && refused < 1800, "refused \(refused) of 2000")
    }

    // MARK: Cases

    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test("pipelined requests (no body, a length, chunks with extensions and trailers), whole and byte by byte")
    func pipelined() throws {
        let text =
            "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
            + "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz"
            + "PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "2;a=\"b c\"\r\nhi\r\nA\r\n0123456789\r\n0\r\nX-Sum: 7\r\n\r\n"
        let bytes = Self.bytes(text)
        let expected: [Outcome.Part] = [
            .head(method: "GET", uri: "/a", version: "HTTP/1.1", fields: ["Host: h"]), .end(trailers: nil),
            .head(method: "POST", uri: "/b", version: "HTTP/1.1", fields: ["Host: h", "Content-Length: 3"]),
            .body(Self.bytes("xyz")), .end(trailers: nil),
            .head(method: "PUT", uri: "/c", version: "HTTP/1.1", fields: ["Host: h", "Transfer-Encoding: chunked"]),
            .body(Self.bytes("hi0123456789")), .end(trailers: ["X-Sum: 7"]),
        ]
        #expect(try Self.weft(bytes) == Outcome(parts: expected, verdict: .accepted))
        #expect(try Self.weft(bytes, splits: Array(1..<bytes.count)) == Outcome(parts: expected, verdict: .accepted))
        #expect(try Self.nio(bytes) == Outcome(parts: expected, verdict: .accepted))
    }

    @Test("a head over the limits is refused as an overflow while it is still arriving")
    func overflowWhileArriving() throws {
        // A field line is cut off once it could not fit a name and a value within the limit (200 bytes each).
        let longField = "GET / HTTP/1.1\r\nHost: h\r\nX-Long: " + String(repeating: "a", count: 700)
        #expect(try Self.weft(Self.bytes(longField)).verdict == .overflow)
        let longTarget = "GET /" + String(repeating: "a", count: 600)
        #expect(try Self.weft(Self.bytes(longTarget)).verdict == .overflow)
        let manyFields = "GET / HTTP/1.1\r\n" + String(repeating: "X: y\r\n", count: 13)
        #expect(try Self.weft(Self.bytes(manyFields)).verdict == .overflow)
        // Within the limits and incomplete: waiting, not refused.
        let outcome = try Self.run(
            HTTP1RequestDecoder(limits: Self.limits), [Self.bytes("GET / HTTP/1.1\r\nHost: h\r\n")], close: false)
        #expect(outcome == Outcome())
    }

    @Test("what follows a CONNECT or upgrade request goes to the handler behind when the decoder leaves")
    func tunnelBytesAfterRequest() throws {
        for head in [
            "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
            "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n",
        ] {
            let decoder = HTTP1RequestDecoder(limits: Self.limits)
            let channel = EmbeddedChannel(handler: decoder)
            try channel.writeInbound(ByteBuffer(string: head + "GET /not-http HTTP/1.1\r\n\r\n"))
            guard case .head = try channel.readInbound(as: HTTPServerRequestPart.self) else {
                Issue.record("no head for \(head.debugDescription)")
                continue
            }
            guard case .end = try channel.readInbound(as: HTTPServerRequestPart.self) else {
                Issue.record("no end for \(head.debugDescription)")
                continue
            }
            #expect(try channel.readInbound(as: HTTPServerRequestPart.self) == nil)
            try channel.pipeline.syncOperations.removeHandler(decoder).wait()
            #expect(
                try channel.readInbound(as: ByteBuffer.self) == ByteBuffer(string: "GET /not-http HTTP/1.1\r\n\r\n"))
            _ = try channel.finish(acceptAlreadyClosed: true)
        }
    }

    @Test(
        "responses: HEAD and 304 without a body, 100 dropped, a body to the close ended by it, bytes after a 101 kept")
    func responses() throws {
        let text =
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
            + "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n"
            + "HTTP/1.0 200 OK\r\n\r\nuntil the close"
        let outcome = try Self.run(
            HTTP1ClientCodec(limits: Self.limits), [Self.bytes(text)], requests: [.HEAD, .GET, .GET])
        #expect(
            outcome
                == Outcome(
                    parts: [
                        .head(method: "", uri: "200", version: "HTTP/1.1", fields: ["Content-Length: 5"]),
                        .end(trailers: nil),
                        .head(method: "", uri: "304", version: "HTTP/1.1", fields: ["Content-Length: 5"]),
                        .end(trailers: nil), .head(method: "", uri: "200", version: "HTTP/1.0", fields: []),
                        .body(Self.bytes("until the close")), .end(trailers: nil),
                    ], verdict: .accepted))
        // An answer to no request is refused.
        #expect(try Self.run(HTTP1ClientCodec(limits: Self.limits), [Self.bytes(text)]).verdict == .refused)

        let codec = HTTP1ClientCodec(limits: Self.limits)
        let channel = EmbeddedChannel(handler: codec)
        try channel.writeOutbound(
            HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/")))
        try channel.writeInbound(
            ByteBuffer(string: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\u{81}\u{0}"))
        guard case .head(let head) = try channel.readInbound(as: HTTPClientResponsePart.self) else {
            Issue.record("no 101 head")
            return
        }
        #expect(head.status == .switchingProtocols)
        guard case .end = try channel.readInbound(as: HTTPClientResponsePart.self) else {
            Issue.record("no end after the 101")
            return
        }
        try channel.pipeline.syncOperations.removeHandler(codec).wait()
        #expect(try channel.readInbound(as: ByteBuffer.self) == ByteBuffer(string: "\u{81}\u{0}"))
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    @Test("keep-alive as NIO's HTTPHeaders.isKeepAlive reads it, without its allocations")
    func keepAlive() {
        let connections: [[String]] = [
            [], ["close"], ["keep-alive"], ["Keep-Alive"], ["CLOSE"], ["close, keep-alive"], ["keep-alive, keep-alive"],
            ["keep-alive", "keep-alive"], ["upgrade"], ["Upgrade, close"], [" keep-alive "], ["te, keep-alive"], [""],
        ]
        for values in connections {
            var headers = HTTPHeaders([("host", "h")])
            for value in values {
                headers.add(name: "Connection", value: value)
            }
            for version in [HTTPVersion.http1_0, .http1_1] {
                #expect(
                    ConnectionOptions(headers).keepsAlive(version: version)
                        == HTTPRequestHead(version: version, method: .GET, uri: "/", headers: headers).isKeepAlive,
                    "\(values) \(version)")
            }
        }
    }
}
