import NIOCore
import NIOHTTP1

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// HTTP/1.1 message parsing (RFC 9112) for both legs, in place of NIO's `HTTPRequestDecoder` and
/// `HTTPResponseDecoder` (llhttp behind a `ByteToMessageHandler`). It yields the heads, bodies, ends and
/// `HTTPParserError`s those do, so the handlers behind cannot tell them apart; what differs is the cost: a head is
/// read line by line straight from the read buffer (no parser callbacks, no generic decoder around it), and a
/// body goes on as slices of that buffer.
///
/// What it accepts is what the proxy forwards, so it is strict where two parsers could disagree (RFC 9112 §2.2,
/// §4, §5, §6, §7.1, §11.2), and refuses:
/// - bare LF line ends, anywhere in a head, a chunk-size line or trailers;
/// - a method that is not one llhttp knows, a target with a space or a control or non-ASCII byte, a version
///   other than `HTTP/1.0` or `HTTP/1.1`, or anything after the version; a status that is not three digits;
/// - a field line that starts with whitespace (obs-fold, or whitespace before the first field), a name that is
///   not a token (whitespace before the colon included), a value with a control byte other than HTAB;
/// - `Content-Length` twice (even with one value), as a list, signed, not decimal, or past 2^64;
/// - `Transfer-Encoding` with `Content-Length`, in a request: on HTTP/1.0 or with a final coding other than
///   `chunked`; `chunked` twice or not last, an empty or non-token element;
/// - a chunk size that is not hexadecimal, is past 2^64, or is followed by anything but chunk extensions; chunk
///   data not followed by CRLF.
/// Empty lines before a request line are skipped (§2.2), and extra spaces before the target are tolerated, as
/// llhttp does (the proxy writes its own request line). An oversized head is `headerOverflow` (the proxy's 431)
/// while it is still arriving, so it is never buffered whole.
///
/// Requests: a CONNECT request, and one asking for an upgrade (`Connection: upgrade` with `Upgrade`), ends the
/// HTTP part of the connection: after its end the parser stops (`isStopped`) and leaves what follows unread, for
/// the tunnel. Responses (§6.3): the request each answers is told first (`requestSent`); a response to HEAD or
/// CONNECT, and a 1xx, 204 or 304, has no body; one with neither `Content-Length` nor a final `chunked` ends when
/// the connection does (`finish`); an informational (1xx but 101) head is dropped, as NIO's decoder does by
/// default; after a 101, or a 2xx to CONNECT, the parser stops.
struct HTTP1Parser: Sendable {
    enum Role: Sendable, Hashable {
        case request
        case response
    }

    enum Part: Sendable {
        case request(HTTPRequestHead)
        case response(HTTPResponseHead)
        case body(ByteBuffer)
        case end(HTTPHeaders?)
    }

    struct Limits: Sendable, Hashable {
        /// Fields in a message (head and trailers).
        var maxFieldCount: Int
        /// A request target, a field's name, a field's value (each).
        var maxFieldBytes: Int
        /// A message's target, field names and values (trailers included) together.
        var maxListBytes: Int

        /// Each limit at most 2^40 (so that the slack added to it for a line still arriving cannot overflow).
        init(maxFieldCount: Int, maxFieldBytes: Int, maxListBytes: Int) {
            self.maxFieldCount = maxFieldCount
            self.maxFieldBytes = min(maxFieldBytes, 1 << 40)
            self.maxListBytes = min(maxListBytes, 1 << 40)
        }

        init(_ nio: NIOHTTPDecoderLimitConfiguration) {
            self.init(
                maxFieldCount: nio.maxHeaderFieldCount, maxFieldBytes: nio.maxHeaderFieldSize,
                maxListBytes: nio.maxHeaderListSize)
        }
    }

    private enum State: Sendable, Hashable {
        /// Between messages: (requests) empty lines are skipped, then a start line.
        case idle
        case fields
        case body(remaining: Int)
        /// A response body that ends with the connection.
        case untilClose
        case chunkSize
        case chunkData(remaining: Int)
        /// The CRLF after a chunk's data.
        case chunkDataEnd
        case trailers
        /// The message is complete: its end goes next.
        case ending
        /// After a tunnel's request or response: what follows is not HTTP.
        case stopped
        /// After a message that does not keep the connection alive: only empty lines may follow.
        case closed
    }

    /// The head being read.
    private struct Head: Sendable {
        var method = HTTPMethod.GET
        var uri = ""
        var status = 0
        var version = HTTPVersion.http1_1
        var contentLength: Int?
        var transferEncoding = false
        /// The last transfer coding so far is `chunked`.
        var chunkedLast = false
        var upgradeField = false
        var connectionUpgrade = false
        var connectionClose = false
        var connectionKeepAlive = false

        /// RFC 9112 §9.3, as llhttp reads it.
        var keepsAlive: Bool {
            self.version == .http1_1 ? !self.connectionClose : self.connectionKeepAlive
        }
    }

    private static let cr = UInt8(ascii: "\r")
    private static let lf = UInt8(ascii: "\n")
    private static let space = UInt8(ascii: " ")
    private static let tab = UInt8(ascii: "\t")

    let role: Role
    let limits: Limits
    private var state = State.idle
    private var head = Head()
    /// The head's fields, then the trailers', as they are read (kept at capacity between messages: a head's
    /// `HTTPHeaders` takes its array as it is, as NIO's decoder does).
    private var fields: [(String, String)] = []
    private var trailers: [(String, String)] = []
    /// The previous head's fields: a field whose bytes equal the one at the same place there takes its strings
    /// (compared, not validated as UTF-8 and copied into new storage again). On a keep-alive connection most
    /// fields repeat from one message to the next (a client's `host`, `user-agent` and `accept`; a server's
    /// `server`, `content-type`, `connection`). Held no longer than the parser: a dormant connection drops it.
    private var previous: [(String, String)] = []
    /// The message's fields (trailers included) so far, and their bytes with the target's.
    private var fieldCount = 0
    private var fieldBytes = 0
    /// The message being read ends the HTTP part of the connection.
    private var stopsAfter = false
    /// The message being read leaves the connection open for another one.
    private var keepsAlive = true
    /// Responses: the methods of the requests sent and not yet answered, oldest first.
    private var requests = CircularBuffer<HTTPMethod>(initialCapacity: 2)

    init(role: Role, limits: Limits) {
        self.role = role
        self.limits = limits
        self.fields.reserveCapacity(16)
    }

    /// After a tunnel's request or response end: the bytes that follow are the tunnel's.
    var isStopped: Bool { self.state == .stopped }

    /// Between two messages, with nothing of the next one read.
    var isIdle: Bool { self.state == .idle }

    /// The message is complete: `next` returns its end without needing a byte.
    var endsNext: Bool { self.state == .ending }

    /// Responses: a request with `method` went out; its response is read after those of the requests before it.
    mutating func requestSent(_ method: HTTPMethod) {
        self.requests.append(method)
    }

    /// The next part that `buffer`'s readable bytes complete, consuming them; nil when it needs more bytes (or has
    /// stopped). Throws an `HTTPParserError` (or NIO's `unsolicitedResponse`) for a message it refuses; the
    /// parser must not be used after that.
    mutating func next(_ buffer: inout ByteBuffer) throws -> Part? {
        while true {
            switch self.state {
            case .idle:
                Self.skipEmptyLines(&buffer)
                guard
                    let length = try Self.line(
                        buffer, limit: self.limits.maxFieldBytes + 64, overflow: .headerOverflow)
                else {
                    return nil
                }
                try buffer.withUnsafeReadableBytes { raw in
                    let line = UnsafeRawBufferPointer(rebasing: raw[..<length])
                    switch self.role {
                    case .request: try self.requestLine(line)
                    case .response: try self.statusLine(line)
                    }
                }
                buffer.moveReaderIndex(forwardBy: length + 2)
                self.state = .fields
            case .fields, .trailers:
                let trailer = self.state == .trailers
                guard
                    let length = try Self.line(
                        buffer, limit: 2 * self.limits.maxFieldBytes + 256, overflow: .headerOverflow)
                else {
                    return nil
                }
                if length == 0 {
                    buffer.moveReaderIndex(forwardBy: 2)
                    if trailer {
                        return self.messageEnd()
                    }
                    if let part = try self.headComplete() {
                        return part
                    }
                    continue
                }
                try buffer.withUnsafeReadableBytes { raw in
                    try self.field(UnsafeRawBufferPointer(rebasing: raw[..<length]), trailer: trailer)
                }
                buffer.moveReaderIndex(forwardBy: length + 2)
            case .body(let remaining):
                let count = min(remaining, buffer.readableBytes)
                guard count > 0, let slice = buffer.readSlice(length: count) else {
                    return nil
                }
                self.state = count == remaining ? .ending : .body(remaining: remaining - count)
                return .body(slice)
            case .untilClose:
                guard buffer.readableBytes > 0, let slice = buffer.readSlice(length: buffer.readableBytes) else {
                    return nil
                }
                return .body(slice)
            case .chunkSize:
                guard let length = try Self.line(buffer, limit: 1024, overflow: .invalidChunkSize) else {
                    return nil
                }
                let size = try buffer.withUnsafeReadableBytes { raw in
                    try Self.chunkSize(UnsafeRawBufferPointer(rebasing: raw[..<length]))
                }
                buffer.moveReaderIndex(forwardBy: length + 2)
                self.state = size == 0 ? .trailers : .chunkData(remaining: size)
            case .chunkData(let remaining):
                let count = min(remaining, buffer.readableBytes)
                guard count > 0, let slice = buffer.readSlice(length: count) else {
                    return nil
                }
                self.state = count == remaining ? .chunkDataEnd : .chunkData(remaining: remaining - count)
                return .body(slice)
            case .chunkDataEnd:
                let view = buffer.readableBytesView
                guard let first = view.first else {
                    return nil
                }
                guard first == Self.cr else {
                    throw HTTPParserError.invalidChunkSize
                }
                guard view.count >= 2 else {
                    return nil
                }
                guard view[view.startIndex + 1] == Self.lf else {
                    throw HTTPParserError.lfExpected
                }
                buffer.moveReaderIndex(forwardBy: 2)
                self.state = .chunkSize
            case .ending:
                return self.messageEnd()
            case .stopped:
                return nil
            case .closed:
                Self.skipEmptyLines(&buffer)
                guard buffer.readableBytes == 0 else {
                    throw HTTPParserError.closedConnection
                }
                return nil
            }
        }
    }

    /// The connection closed with `buffered` bytes unparsed: the end of a response that runs until then, nil
    /// between messages (or after a stop); throws `invalidEOFState` in the middle of a message.
    mutating func finish(buffered: Int) throws -> Part? {
        switch self.state {
        case .untilClose:
            return self.messageEnd()
        case .idle where buffered == 0, .stopped, .closed:
            return nil
        default:
            throw HTTPParserError.invalidEOFState
        }
    }

    // MARK: Lines

    private static func skipEmptyLines(_ buffer: inout ByteBuffer) {
        var skipped = 0
        for byte in buffer.readableBytesView {
            guard byte == Self.cr || byte == Self.lf else {
                break
            }
            skipped += 1
        }
        if skipped > 0 {
            buffer.moveReaderIndex(forwardBy: skipped)
        }
    }

    /// The length of the first line in `buffer` (without its CRLF) once its end has arrived; nil before. Throws
    /// `lfExpected` for a bare LF, and `overflow` once a line longer than `limit` is still arriving.
    private static func line(_ buffer: ByteBuffer, limit: Int, overflow: HTTPParserError) throws -> Int? {
        let found = buffer.withUnsafeReadableBytes { raw -> Int? in
            guard let base = raw.baseAddress, raw.count > 0, let at = memchr(base, Int32(Self.lf), raw.count) else {
                return nil
            }
            return UnsafeRawPointer(at) - base
        }
        guard let found else {
            if buffer.readableBytes > limit + 2 {
                throw overflow
            }
            return nil
        }
        guard found > 0, buffer.getInteger(at: buffer.readerIndex + found - 1, as: UInt8.self) == Self.cr else {
            throw HTTPParserError.lfExpected
        }
        if found - 1 > limit {
            throw overflow
        }
        return found - 1
    }

    // MARK: Head

    private mutating func requestLine(_ line: UnsafeRawBufferPointer) throws {
        var index = 0
        while index < line.count, HTTP1Head.isTokenByte(line[index]) {
            index += 1
        }
        guard index > 0, index < line.count, line[index] == Self.space,
            let method = Self.method(UnsafeRawBufferPointer(rebasing: line[..<index]))
        else {
            throw HTTPParserError.invalidMethod
        }
        index += 1
        while index < line.count, line[index] == Self.space {
            index += 1
        }
        let targetStart = index
        while index < line.count, line[index] != Self.space {
            index += 1
        }
        let target = UnsafeRawBufferPointer(rebasing: line[targetStart..<index])
        guard index < line.count, Self.isTarget(target, connect: method == .CONNECT) else {
            throw HTTPParserError.invalidURL
        }
        guard target.count <= self.limits.maxFieldBytes else {
            throw HTTPParserError.headerOverflow
        }
        self.fieldBytes = target.count
        while index < line.count, line[index] == Self.space {
            index += 1
        }
        let version = UnsafeRawBufferPointer(rebasing: line[index...])
        guard version.count == 8, version.starts(with: "HTTP/1.".utf8),
            version[7] == UInt8(ascii: "0") || version[7] == UInt8(ascii: "1")
        else {
            throw HTTPParserError.invalidVersion
        }
        self.head.method = method
        self.head.uri = String(decoding: target, as: UTF8.self)
        self.head.version = version[7] == UInt8(ascii: "1") ? .http1_1 : .http1_0
    }

    /// `HTTP-version SP 3DIGIT [ SP reason-phrase ]` (a missing reason tolerated, as llhttp does). The reason is
    /// not kept (NIO's decoder does not keep it either), so only CR is refused in it.
    private mutating func statusLine(_ line: UnsafeRawBufferPointer) throws {
        guard line.count >= 12, line.starts(with: "HTTP/1.".utf8),
            line[7] == UInt8(ascii: "0") || line[7] == UInt8(ascii: "1"), line[8] == Self.space
        else {
            throw HTTPParserError.invalidVersion
        }
        var status = 0
        for index in 9..<12 {
            let byte = line[index]
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else {
                throw HTTPParserError.invalidStatus
            }
            status = status * 10 + Int(byte - UInt8(ascii: "0"))
        }
        // Then a space and any bytes but CR (llhttp takes some runs of CR there; Weft refuses them all).
        guard line.count == 12 || (line[12] == Self.space && !line[13...].contains(Self.cr)) else {
            throw HTTPParserError.invalidStatus
        }
        self.head.version = line[7] == UInt8(ascii: "1") ? .http1_1 : .http1_0
        self.head.status = status
    }

    /// The request-target forms llhttp parses (RFC 9112 §3.2): origin-form (`/` then visible ASCII), asterisk-form
    /// (`*`, and as llhttp, visible ASCII after it), absolute-form (letters, `://`, an authority, then `/` or `?` and
    /// visible ASCII); for CONNECT, an authority, or an authority followed by a path or query, or either alone.
    private static func isTarget(_ target: UnsafeRawBufferPointer, connect: Bool) -> Bool {
        guard let first = target.first else {
            return false
        }
        if connect {
            // As llhttp: an authority, then optionally `/` or `?` and visible ASCII (the proxy reads an authority
            // or refuses it).
            var index = 0
            while index < target.count, target[index] != UInt8(ascii: "/"), target[index] != UInt8(ascii: "?") {
                index += 1
            }
            return Self.isAuthority(UnsafeRawBufferPointer(rebasing: target[..<index]))
                && UnsafeRawBufferPointer(rebasing: target[index...]).allSatisfy(Self.isVisible)
        }
        if first == UInt8(ascii: "/") {
            return target.allSatisfy(Self.isVisible)
        }
        if first == UInt8(ascii: "*") {
            return target.allSatisfy(Self.isVisible)
        }
        var index = 0
        while index < target.count, (target[index] | 0x20) >= UInt8(ascii: "a"),
            (target[index] | 0x20) <= UInt8(ascii: "z")
        {
            index += 1
        }
        guard index > 0, UnsafeRawBufferPointer(rebasing: target[index...]).starts(with: "://".utf8) else {
            return false
        }
        index += 3
        let host = index
        while index < target.count, target[index] != UInt8(ascii: "/"), target[index] != UInt8(ascii: "?") {
            index += 1
        }
        return Self.isAuthority(UnsafeRawBufferPointer(rebasing: target[host..<index]))
            && UnsafeRawBufferPointer(rebasing: target[index...]).allSatisfy(Self.isVisible)
    }

    /// llhttp's server characters: RFC 3986's unreserved, sub-delims, `%`, `:`, `[`, `]` and `@` (not two in a row):
    /// a target's characters but `/`, `?` and `#`.
    private static func isAuthority(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var previous: UInt8 = 0
        for byte in bytes {
            guard HTTP1Head.isTargetByte(byte), byte != UInt8(ascii: "/"), byte != UInt8(ascii: "?"),
                byte != UInt8(ascii: "#"), byte != UInt8(ascii: "@") || previous != UInt8(ascii: "@")
            else {
                return false
            }
            previous = byte
        }
        return true
    }

    /// Visible ASCII: what a target's path, query and fragment may hold (no space, control byte or non-ASCII).
    @inline(__always)
    private static func isVisible(_ byte: UInt8) -> Bool {
        byte > 0x20 && byte < 0x7F
    }

    /// One field line (not empty). Framing fields are read as they come (heads only).
    private mutating func field(_ line: UnsafeRawBufferPointer, trailer: Bool) throws {
        var colon = 0
        while colon < line.count, HTTP1Head.isTokenByte(line[colon]) {
            colon += 1
        }
        // Also refuses obs-fold and whitespace before the first field or the colon: none is a token byte.
        guard colon > 0, colon < line.count, line[colon] == UInt8(ascii: ":") else {
            throw HTTPParserError.invalidHeaderToken
        }
        var start = colon + 1
        while start < line.count, line[start] == Self.space || line[start] == Self.tab {
            start += 1
        }
        let name = UnsafeRawBufferPointer(rebasing: line[..<colon])
        // Kept with its trailing whitespace, as llhttp hands it on.
        let value = UnsafeRawBufferPointer(rebasing: line[start...])
        guard HTTP1Head.isFieldValue(value) else {
            throw HTTPParserError.invalidHeaderToken
        }
        self.fieldCount += 1
        self.fieldBytes += name.count + value.count
        guard name.count <= self.limits.maxFieldBytes, value.count <= self.limits.maxFieldBytes,
            self.fieldCount <= self.limits.maxFieldCount, self.fieldBytes <= self.limits.maxListBytes
        else {
            throw HTTPParserError.headerOverflow
        }
        let index = self.fields.count
        let field =
            !trailer && index < self.previous.count
            ? (Self.string(name, reusing: self.previous[index].0), Self.string(value, reusing: self.previous[index].1))
            : (String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self))
        if trailer {
            self.trailers.append(field)
            return
        }
        switch name.count {
        case 7, 10, 14, 17:
            try self.framing(name: name, value: value)
        default:
            break
        }
        self.fields.append(field)
    }

    /// `old` when it holds exactly `bytes`, else a new string of them.
    private static func string(_ bytes: UnsafeRawBufferPointer, reusing old: String) -> String {
        let same = old.utf8.withContiguousStorageIfAvailable { stored in
            guard stored.count == bytes.count else {
                return false
            }
            guard let mine = stored.baseAddress, let theirs = bytes.baseAddress else {
                return true  // both empty
            }
            return memcmp(mine, theirs, bytes.count) == 0
        }
        return same == true ? old : String(decoding: bytes, as: UTF8.self)
    }

    /// Reads `Content-Length`, `Transfer-Encoding`, `Connection` and `Upgrade` (`raw`: the value with its trailing
    /// whitespace).
    private mutating func framing(name: UnsafeRawBufferPointer, value raw: UnsafeRawBufferPointer) throws {
        var end = raw.count
        while end > 0, raw[end - 1] == Self.space || raw[end - 1] == Self.tab {
            end -= 1
        }
        let value = UnsafeRawBufferPointer(rebasing: raw[..<end])
        switch name.count {
        case 14 where Self.equalsLowercase(name, "content-length"):
            guard self.head.contentLength == nil else {
                throw HTTPParserError.unexpectedContentLength
            }
            // Digits, then only spaces (llhttp refuses a tab there).
            guard !value.isEmpty, raw[value.count...].allSatisfy({ $0 == Self.space }) else {
                throw HTTPParserError.invalidContentLength
            }
            var length: UInt64 = 0
            for byte in value {
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else {
                    throw HTTPParserError.invalidContentLength
                }
                let (times10, overflow1) = length.multipliedReportingOverflow(by: 10)
                let (sum, overflow2) = times10.addingReportingOverflow(UInt64(byte - UInt8(ascii: "0")))
                guard !overflow1, !overflow2 else {
                    throw HTTPParserError.invalidContentLength
                }
                length = sum
            }
            // Past 2^63 (as llhttp, up to 2^64): a body that never ends here either.
            self.head.contentLength = Int(clamping: length)
        case 17 where Self.equalsLowercase(name, "transfer-encoding"):
            self.head.transferEncoding = true
            // With its trailing whitespace: `chunked` and a tab is not `chunked` to llhttp.
            var afterChunked = false
            Self.forEachElement(raw) { element in
                // In a request, `chunked` must be the last coding, and only once (a response whose final coding is
                // not `chunked` runs until the close).
                afterChunked = afterChunked || self.head.chunkedLast
                self.head.chunkedLast = element.count == 7 && Self.equalsLowercase(element, "chunked")
            }
            if afterChunked, self.role == .request {
                throw HTTPParserError.invalidHeaderToken
            }
        case 10 where Self.equalsLowercase(name, "connection"):
            Self.forEachElement(value) { element in
                if Self.equalsLowercase(element, "upgrade") {
                    self.head.connectionUpgrade = true
                } else if Self.equalsLowercase(element, "close") {
                    self.head.connectionClose = true
                } else if Self.equalsLowercase(element, "keep-alive") {
                    self.head.connectionKeepAlive = true
                }
            }
        case 7 where Self.equalsLowercase(name, "upgrade"):
            self.head.upgradeField = true
        default:
            break
        }
    }

    /// The head is complete: its framing decides what follows. Nil for an informational response (dropped).
    private mutating func headComplete() throws -> Part? {
        var head = Head()
        swap(&head, &self.head)
        self.keepsAlive = head.keepsAlive
        if head.transferEncoding, head.contentLength != nil {
            throw HTTPParserError.unexpectedContentLength
        }
        switch self.role {
        case .request:
            let hasBody = (head.transferEncoding && head.chunkedLast) || (head.contentLength ?? 0) > 0
            self.stopsAfter = head.method == .CONNECT || (head.upgradeField && head.connectionUpgrade)
            if self.stopsAfter, head.method == .CONNECT || !hasBody {
                // A tunnel from here on: what the framing fields say no longer matters (llhttp's order).
                self.state = .ending
            } else {
                // (On HTTP/1.0 a chunked body is parsed, as llhttp does; `RequestEnvelope` refuses the request.)
                guard !head.transferEncoding || head.chunkedLast else {
                    throw HTTPParserError.invalidHeaderToken
                }
                self.state = self.bodyState(head, otherwise: .ending)
            }
            return .request(
                HTTPRequestHead(version: head.version, method: head.method, uri: head.uri, headers: self.takeFields()))
        case .response:
            guard let method = self.requests.first else {
                throw NIOHTTPDecoderError.unsolicitedResponse
            }
            if head.status >= 100, head.status < 200, head.status != 101 {
                // Informational: the final response to the same request comes next (none if it said close, as
                // llhttp reads it).
                self.fieldCount = 0
                self.fieldBytes = 0
                self.fields.removeAll(keepingCapacity: true)
                self.state = self.keepsAlive ? .idle : .closed
                return nil
            }
            self.requests.removeFirst()
            self.stopsAfter = head.status == 101 || (method == .CONNECT && head.status / 100 == 2)
            if method == .HEAD || method == .CONNECT || head.status / 100 == 1 || head.status == 204
                || head.status == 304
            {
                self.state = .ending
            } else {
                self.state = self.bodyState(head, otherwise: .untilClose)
            }
            return .response(
                HTTPResponseHead(
                    version: head.version, status: HTTPResponseStatus(statusCode: head.status),
                    headers: self.takeFields()))
        }
    }

    /// The head's fields as `HTTPHeaders` (which keeps the array; the next head's fields start a new one of the
    /// same capacity).
    private mutating func takeFields() -> HTTPHeaders {
        let headers = HTTPHeaders(self.fields)
        self.previous = self.fields
        self.fields.removeAll(keepingCapacity: true)
        return headers
    }

    /// How a message's body is framed: chunked, by length, or `otherwise`.
    private func bodyState(_ head: Head, otherwise: State) -> State {
        if head.transferEncoding {
            // A response whose final coding is not chunked runs until the connection closes (requests refused it).
            return head.chunkedLast ? .chunkSize : .untilClose
        }
        if let length = head.contentLength {
            return length > 0 ? .body(remaining: length) : .ending
        }
        return otherwise
    }

    private mutating func messageEnd() -> Part {
        let trailers = self.trailers.isEmpty ? nil : HTTPHeaders(self.trailers)
        self.trailers = []
        self.fieldCount = 0
        self.fieldBytes = 0
        self.state = self.stopsAfter ? .stopped : self.keepsAlive ? .idle : .closed
        self.stopsAfter = false
        return .end(trailers)
    }

    // MARK: Chunks

    /// `chunk-size [ chunk-ext ]` (RFC 9112 §7.1.1): hexadecimal, then `;name` or `;name=value` (a token or a
    /// quoted string) extensions, without whitespace (llhttp refuses the BWS the grammar allows; it lets a name or
    /// a value be empty).
    private static func chunkSize(_ line: UnsafeRawBufferPointer) throws -> Int {
        var size: UInt64 = 0
        var index = 0
        while index < line.count, let digit = Self.hexValue(line[index]) {
            guard size >> 60 == 0 else {
                throw HTTPParserError.invalidChunkSize
            }
            size = size << 4 | UInt64(digit)
            index += 1
        }
        guard index > 0 else {
            throw HTTPParserError.invalidChunkSize
        }
        while index < line.count {
            guard line[index] == UInt8(ascii: ";") else {
                throw HTTPParserError.invalidChunkSize
            }
            // The name and the value may be empty, as llhttp reads them, but not the whole extension.
            index += 1
            guard index < line.count else {
                throw HTTPParserError.invalidChunkSize
            }
            while index < line.count, HTTP1Head.isTokenByte(line[index]) {
                index += 1
            }
            guard index < line.count, line[index] == UInt8(ascii: "=") else {
                continue
            }
            index = try Self.extensionValue(line, from: index + 1)
        }
        // Past 2^63 (as llhttp, up to 2^64): a chunk that never ends here either.
        return Int(clamping: size)
    }

    /// The end of a chunk extension's value at `index`: a token or a quoted string.
    private static func extensionValue(_ line: UnsafeRawBufferPointer, from start: Int) throws -> Int {
        var index = start
        guard index < line.count, line[index] == UInt8(ascii: "\"") else {
            while index < line.count, HTTP1Head.isTokenByte(line[index]) {
                index += 1
            }
            return index
        }
        index += 1
        while index < line.count {
            let byte = line[index]
            switch byte {
            case UInt8(ascii: "\""):
                return index + 1
            case UInt8(ascii: "\\"):
                guard index + 1 < line.count, Self.isQuotedByte(line[index + 1]) else {
                    throw HTTPParserError.invalidChunkSize
                }
                index += 2
            default:
                guard Self.isQuotedByte(byte) else {
                    throw HTTPParserError.invalidChunkSize
                }
                index += 1
            }
        }
        throw HTTPParserError.invalidChunkSize
    }

    /// `qdtext` or a quoted pair's byte: HTAB, space, visible ASCII, obs-text, and as llhttp, DEL.
    @inline(__always)
    private static func isQuotedByte(_ byte: UInt8) -> Bool {
        byte == Self.tab || byte >= 0x20
    }

    @inline(__always)
    private static func hexValue(_ byte: UInt8) -> Int? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): Int(byte &- UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): Int(byte &- UInt8(ascii: "a") &+ 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): Int(byte &- UInt8(ascii: "A") &+ 10)
        default: nil
        }
    }

    // MARK: Bytes

    /// Each element of a comma-separated list, without the spaces around it (tabs stay, as llhttp leaves them).
    private static func forEachElement(_ value: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> Void) {
        var start = 0
        while start <= value.count {
            var end = start
            while end < value.count, value[end] != UInt8(ascii: ",") {
                end += 1
            }
            var first = start
            var last = end
            while first < last, value[first] == Self.space {
                first += 1
            }
            while last > first, value[last - 1] == Self.space {
                last -= 1
            }
            body(UnsafeRawBufferPointer(rebasing: value[first..<last]))
            start = end + 1
        }
    }

    /// Whether `bytes` are `lowercase` in any ASCII case (`lowercase`: lowercase letters and `-`).
    @inline(__always)
    private static func equalsLowercase(_ bytes: UnsafeRawBufferPointer, _ lowercase: StaticString) -> Bool {
        guard bytes.count == lowercase.utf8CodeUnitCount else {
            return false
        }
        let expected = lowercase.utf8Start
        for index in 0..<bytes.count where bytes[index] | 0x20 != expected[index] {
            return false
        }
        return true
    }

    /// The methods llhttp parses in requests (NIO's `HTTPMethod` for each), by their bytes.
    private static func method(_ bytes: UnsafeRawBufferPointer) -> HTTPMethod? {
        switch bytes.count {
        case 3:
            if bytes.elementsEqual("GET".utf8) { return .GET }
            if bytes.elementsEqual("PUT".utf8) { return .PUT }
        case 4:
            if bytes.elementsEqual("POST".utf8) { return .POST }
            if bytes.elementsEqual("HEAD".utf8) { return .HEAD }
        default:
            break
        }
        return Self.otherMethods[String(decoding: bytes, as: UTF8.self)]
    }

    private static let otherMethods: [String: HTTPMethod] = [
        "DELETE": .DELETE, "CONNECT": .CONNECT, "OPTIONS": .OPTIONS, "TRACE": .TRACE, "PATCH": .PATCH, "COPY": .COPY,
        "LOCK": .LOCK, "MKCOL": .MKCOL, "MOVE": .MOVE, "PROPFIND": .PROPFIND, "PROPPATCH": .PROPPATCH,
        "SEARCH": .SEARCH, "UNLOCK": .UNLOCK, "BIND": .BIND, "REBIND": .REBIND, "UNBIND": .UNBIND, "ACL": .ACL,
        "REPORT": .REPORT, "MKACTIVITY": .MKACTIVITY, "CHECKOUT": .CHECKOUT, "MERGE": .MERGE, "M-SEARCH": .MSEARCH,
        "NOTIFY": .NOTIFY, "SUBSCRIBE": .SUBSCRIBE, "UNSUBSCRIBE": .UNSUBSCRIBE, "PURGE": .PURGE,
        "MKCALENDAR": .MKCALENDAR, "LINK": .LINK, "UNLINK": .UNLINK, "SOURCE": .RAW(value: "SOURCE"),
        "QUERY": .RAW(value: "QUERY"),
    ]
}
