import NIOCore
import NIOHTTP1

/// HTTP/1.1 serialization for both legs, in place of NIO's `HTTPResponseEncoder` (downstream) and its
/// `HTTPRequestEncoder` with `NIOHTTPRequestHeadersValidator` (upstream). The wire format, the framing and the
/// checks are theirs; what differs is the cost. A head is checked and then written in one sized write (NIO writes
/// each field as four writes into a growing buffer, and checks a request's fields in a handler of its own), and a
/// chunk's size line is written without a `String`.
///
/// The checks (RFC 9110 §5.5, RFC 9112 §3.2, as NIO makes them): field names and the method are tokens, field
/// values have no control character but HTAB, the request target has only the characters a URI may carry. A
/// head or trailers that fail them are not written: the write fails with `HTTPParserError.invalidHeaderToken`,
/// which also goes up the pipeline as an error (the connection's handler closes it).
enum HTTP1Head {
    /// The head's bytes: the start line (`startLineBytes` long, written by `startLine`), CRLF, each field as
    /// `name: value` CRLF, and a blank line, in one write; nil (nothing written) when a field fails the checks.
    /// The start line is checked by the caller.
    static func write(
        startLineBytes: Int, headers: HTTPHeaders, allocator: ByteBufferAllocator,
        startLine: (inout HeadWriter) -> Void
    ) -> ByteBuffer? {
        var size = startLineBytes + 4
        for field in headers {
            guard Self.isToken(field.name), Self.isFieldValue(field.value) else {
                return nil
            }
            size += field.name.utf8.count + field.value.utf8.count + 4
        }
        var buffer = allocator.buffer(capacity: size)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { raw in
            var writer = HeadWriter(out: raw.bindMemory(to: UInt8.self))
            startLine(&writer)
            writer.append(UInt8(ascii: "\r"), UInt8(ascii: "\n"))
            for field in headers {
                writer.append(field.name)
                writer.append(UInt8(ascii: ":"), UInt8(ascii: " "))
                writer.append(field.value)
                writer.append(UInt8(ascii: "\r"), UInt8(ascii: "\n"))
            }
            writer.append(UInt8(ascii: "\r"), UInt8(ascii: "\n"))
            return writer.at
        }
        return buffer
    }

    /// The last chunk with `trailers`; nil when one fails the checks.
    static func lastChunk(trailers: HTTPHeaders?, allocator: ByteBufferAllocator) -> ByteBuffer? {
        guard let trailers, !trailers.isEmpty else {
            var buffer = allocator.buffer(capacity: 5)
            buffer.writeStaticString("0\r\n\r\n")
            return buffer
        }
        return Self.write(startLineBytes: 1, headers: trailers, allocator: allocator) {
            $0.append(UInt8(ascii: "0"))
        }
    }

    /// RFC 9110 `token`: what a field name and a method are made of.
    static func isToken(_ string: String) -> Bool {
        !string.isEmpty && withUTF8(string) { $0.allSatisfy(Self.isTokenByte) }
    }

    /// A field value: no control character but HTAB (CR, LF and NUL would split or end the message).
    /// Eight bytes at a time while none of them is below 0x20 or DEL (a word with a tab, or a bad byte, is
    /// looked at byte by byte from there on).
    static func isFieldValue(_ string: String) -> Bool {
        withUTF8(string) { Self.isFieldValue(UnsafeRawBufferPointer($0)) }
    }

    /// `isFieldValue` over bytes.
    static func isFieldValue(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var index = 0
        if let base = bytes.baseAddress {
            while index &+ 8 <= bytes.count,
                !Self.mayHoldControlByte(base.loadUnaligned(fromByteOffset: index, as: UInt64.self))
            {
                index &+= 8
            }
        }
        while index < bytes.count {
            let byte = bytes[index]
            guard byte == UInt8(ascii: "\t") || (byte >= 0x20 && byte != 0x7F) else {
                return false
            }
            index &+= 1
        }
        return true
    }

    /// Whether one of `word`'s bytes is below 0x20 or is 0x7F; exact as a whole, though not per byte (a borrow
    /// can mark a byte above a true hit).
    @inline(__always)
    static func mayHoldControlByte(_ word: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        let below20 = (word &- ones &* 0x20) & ~word & highs
        let del = word ^ (ones &* 0x7F)
        let isDel = (del &- ones) & ~del & highs
        return below20 | isDel != 0
    }

    /// A request target: RFC 3986's unreserved, reserved and `%` characters (anything else must be
    /// percent-encoded; CR, LF, NUL and spaces would change the request line).
    static func isRequestTarget(_ string: String) -> Bool {
        !string.isEmpty && withUTF8(string) { $0.allSatisfy(Self.isTargetByte) }
    }

    /// RFC 9110's `tchar`: digits, letters and ``!#$%&'*+-.^_`|~``, as a bit per byte value below 128.
    @inline(__always)
    static func isTokenByte(_ byte: UInt8) -> Bool {
        let below64: UInt64 = 0x03FF_6CFA_0000_0000
        let from64: UInt64 = 0x57FF_FFFF_C7FF_FFFE
        if byte < 64 {
            return (below64 >> UInt64(byte)) & 1 == 1
        }
        return byte < 128 && (from64 >> UInt64(byte &- 64)) & 1 == 1
    }

    /// RFC 3986's unreserved, reserved and `%` characters.
    @inline(__always)
    static func isTargetByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
            UInt8(ascii: "~"), UInt8(ascii: ":"), UInt8(ascii: "/"), UInt8(ascii: "?"), UInt8(ascii: "#"),
            UInt8(ascii: "["), UInt8(ascii: "]"), UInt8(ascii: "@"), UInt8(ascii: "!"), UInt8(ascii: "$"),
            UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "*"),
            UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: ";"), UInt8(ascii: "="), UInt8(ascii: "%"):
            return true
        default:
            return false
        }
    }

    /// `body` over the string's UTF-8 bytes, contiguous (a copy made so only when they are not already).
    @inline(__always)
    static func withUTF8<Result>(_ string: String, _ body: (UnsafeBufferPointer<UInt8>) -> Result) -> Result {
        if let result = string.utf8.withContiguousStorageIfAvailable(body) {
            return result
        }
        var copy = string
        return copy.withUTF8(body)
    }

    /// `HTTP/major.minor`, as NIO writes it.
    static func version(_ version: HTTPVersion) -> String {
        switch (version.major, version.minor) {
        case (1, 1):
            return "HTTP/1.1"
        case (1, 0):
            return "HTTP/1.0"
        default:
            return "HTTP/\(version.major).\(version.minor)"
        }
    }

    /// Whether a body is sent chunked: HTTP/1.1 or later, and `transfer-encoding: chunked` as the first
    /// `transfer-encoding` field (how NIO's encoders decide it).
    static func isChunked(_ headers: HTTPHeaders, version: HTTPVersion) -> Bool {
        guard version.major == 1, version.minor >= 1 else {
            return false
        }
        return headers.first(name: "transfer-encoding") == "chunked"
    }
}

/// Appends bytes to a buffer the caller sized.
struct HeadWriter {
    let out: UnsafeMutableBufferPointer<UInt8>
    private(set) var at = 0

    init(out: UnsafeMutableBufferPointer<UInt8>) {
        self.out = out
    }

    mutating func append(_ string: String) {
        HTTP1Head.withUTF8(string) { bytes in
            if let source = bytes.baseAddress, let target = self.out.baseAddress, !bytes.isEmpty {
                (target + self.at).update(from: source, count: bytes.count)
            }
            self.at += bytes.count
        }
    }

    mutating func append(_ byte: UInt8) {
        self.out[self.at] = byte
        self.at += 1
    }

    mutating func append(_ first: UInt8, _ second: UInt8) {
        self.append(first)
        self.append(second)
    }

    /// A status code's three digits (100...999, which the caller checked).
    mutating func appendStatusCode(_ code: UInt) {
        self.append(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: code / 100))
        self.append(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: code / 10 % 10))
        self.append(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: code % 10))
    }
}

/// Writes `part` (a body chunk) on `context`, chunk-framed when `chunked`; `promise` completes with the last of
/// the writes. Empty chunks are not framed (a zero-size chunk would end the body) but still written, so
/// promises complete in order.
private func writeBody(
    _ part: IOData, chunked: Bool, context: ChannelHandlerContext, promise: EventLoopPromise<Void>?
) {
    let size = part.readableBytes
    guard chunked, size > 0 else {
        context.write(NIOAny(part), promise: promise)
        return
    }
    let digits = max(1, (Int.bitWidth - size.leadingZeroBitCount + 3) / 4)
    var framing = context.channel.allocator.buffer(capacity: digits + 2)
    framing.writeWithUnsafeMutableBytes(minimumWritableBytes: digits + 2) { raw in
        let out = raw.bindMemory(to: UInt8.self)
        let end = writeHex(UInt64(size), digits: digits, into: out, at: 0)
        out[end] = UInt8(ascii: "\r")
        out[end + 1] = UInt8(ascii: "\n")
        return end + 2
    }
    context.write(NIOAny(IOData.byteBuffer(framing)), promise: nil)
    context.write(NIOAny(part), promise: nil)
    // The chunk's closing CRLF: the same storage, read from its last two bytes.
    framing.moveReaderIndex(forwardBy: digits)
    context.write(NIOAny(IOData.byteBuffer(framing)), promise: promise)
}

/// Writes the end of a body: the last chunk (with trailers) when chunked; otherwise nothing, or an empty write
/// when there is a promise to complete in order.
private func writeEnd(
    trailers: HTTPHeaders?, chunked: Bool, context: ChannelHandlerContext, promise: EventLoopPromise<Void>?
) {
    if chunked {
        guard let last = HTTP1Head.lastChunk(trailers: trailers, allocator: context.channel.allocator) else {
            failInvalid(context: context, promise: promise)
            return
        }
        context.write(NIOAny(IOData.byteBuffer(last)), promise: promise)
    } else if let promise {
        context.write(NIOAny(IOData.byteBuffer(context.channel.allocator.buffer(capacity: 0))), promise: promise)
    }
}

private func failInvalid(context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
    promise?.fail(HTTPParserError.invalidHeaderToken)
    context.fireErrorCaught(HTTPParserError.invalidHeaderToken)
}

/// The downstream leg's encoder: response parts to bytes. Framing as NIO's `HTTPResponseEncoder` sets it: a
/// status that has no body (1xx, 204, 304) loses `content-length` and `transfer-encoding`; otherwise
/// `content-length` wins over `transfer-encoding`, and an HTTP/1.1 response with neither is sent chunked.
final class HTTP1ResponseEncoder: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = IOData

    private var isChunked = false

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch self.unwrapOutboundIn(data) {
        case .head(var head):
            self.isChunked = Self.frame(&head)
            let version = HTTP1Head.version(head.version)
            let code = head.status.code
            // A code outside 100...999 is written as NIO writes it (its digits), through a string.
            let codeString = (100...999).contains(code) ? nil : String(code)
            let reason = head.status.reasonPhrase
            let startLineBytes = version.utf8.count + (codeString?.utf8.count ?? 3) + reason.utf8.count + 2
            guard HTTP1Head.isFieldValue(reason),
                let buffer = HTTP1Head.write(
                    startLineBytes: startLineBytes, headers: head.headers, allocator: context.channel.allocator,
                    startLine: { writer in
                        writer.append(version)
                        writer.append(UInt8(ascii: " "))
                        if let codeString {
                            writer.append(codeString)
                        } else {
                            writer.appendStatusCode(code)
                        }
                        writer.append(UInt8(ascii: " "))
                        writer.append(reason)
                    })
            else {
                failInvalid(context: context, promise: promise)
                return
            }
            context.write(self.wrapOutboundOut(.byteBuffer(buffer)), promise: promise)
        case .body(let part):
            writeBody(part, chunked: self.isChunked, context: context, promise: promise)
        case .end(let trailers):
            writeEnd(trailers: trailers, chunked: self.isChunked, context: context, promise: promise)
        }
    }

    /// Sets the framing fields of `head`; whether its body is sent chunked. The fields are looked at in one pass
    /// and changed only when something is to go: `HTTPHeaders.remove` copies fields it shares with the caller
    /// (every forwarded head's) even when it removes nothing.
    static func frame(_ head: inout HTTPResponseHead) -> Bool {
        var contentLength = false
        var transferEncoding = false
        for field in head.headers {
            switch ForwardingField(field.name) {
            case .contentLength: contentLength = true
            case .transferEncoding: transferEncoding = true
            default: break
            }
        }
        let bodyAllowed = head.status.mayHaveResponseBody
        if !bodyAllowed, contentLength {
            head.headers.remove(name: "content-length")
        }
        guard bodyAllowed, !contentLength, head.version.major == 1, head.version.minor >= 1 else {
            // An HTTP/1.0 response's own `transfer-encoding` stays, as in NIO's encoder.
            if transferEncoding, !bodyAllowed || contentLength {
                head.headers.remove(name: "transfer-encoding")
            }
            return false
        }
        if transferEncoding {
            head.headers.remove(name: "transfer-encoding")
        }
        head.headers.add(name: "transfer-encoding", value: "chunked")
        return true
    }
}

@available(*, unavailable)
extension HTTP1ResponseEncoder: Sendable {}

/// The upstream leg's request serialization (`HTTP1ClientCodec` writes through it): request parts to bytes, with
/// the checks of NIO's `NIOHTTPRequestHeadersValidator`. The proxy frames requests itself (`RequestFraming`): the
/// body is chunked when the head says `transfer-encoding: chunked`, and nothing is added or removed.
enum HTTP1RequestEncoder {
    /// Writes `part` as bytes (`chunked`: the current request's body is); false when it failed the checks and
    /// nothing was written.
    @discardableResult
    static func write(
        _ part: HTTPClientRequestPart, chunked isChunked: inout Bool, context: ChannelHandlerContext,
        promise: EventLoopPromise<Void>?
    ) -> Bool {
        switch part {
        case .head(let head):
            let method = head.method.rawValue
            let version = HTTP1Head.version(head.version)
            let startLineBytes = method.utf8.count + head.uri.utf8.count + version.utf8.count + 2
            guard HTTP1Head.isToken(method), HTTP1Head.isRequestTarget(head.uri),
                let buffer = HTTP1Head.write(
                    startLineBytes: startLineBytes, headers: head.headers, allocator: context.channel.allocator,
                    startLine: { writer in
                        writer.append(method)
                        writer.append(UInt8(ascii: " "))
                        writer.append(head.uri)
                        writer.append(UInt8(ascii: " "))
                        writer.append(version)
                    })
            else {
                failInvalid(context: context, promise: promise)
                return false
            }
            isChunked = HTTP1Head.isChunked(head.headers, version: head.version)
            context.write(NIOAny(IOData.byteBuffer(buffer)), promise: promise)
        case .body(let part):
            writeBody(part, chunked: isChunked, context: context, promise: promise)
        case .end(let trailers):
            writeEnd(trailers: trailers, chunked: isChunked, context: context, promise: promise)
        }
        return true
    }
}
