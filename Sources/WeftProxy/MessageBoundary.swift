import NIOCore

/// Proves, from the raw bytes of an HTTP/1.1 connection, that its decoder sits exactly between two requests, so
/// that an idle keep-alive connection may drop its decoder (and the rest of its HTTP handlers) without losing a
/// pipelined request's first bytes: NIO's decoder hands every byte to llhttp at once, so a partial next request
/// would live only in llhttp's state.
///
/// It counts the bytes received since the last proven boundary and finds where the head ends (the first
/// CRLF CRLF). A request that ends with exactly as many bytes received as its head plus its `Content-Length`
/// body (or no body) ends on a boundary. Anything it cannot prove (a chunked body, leading empty lines, a
/// pipelined request, a byte count that does not add up) ends the proof for the connection: it never goes
/// dormant. Pure: the guard feeds it reads and request ends.
struct MessageBoundaryTracker: Sendable, Hashable {
    /// Still proving (false: a byte count did not add up once; the connection stays as it is).
    private(set) var proving = true
    /// Bytes received since the last boundary.
    private(set) var received = 0
    /// Where the current head ends, once its CRLF CRLF arrived (an offset from the boundary).
    private(set) var headEnd: Int?
    /// How many bytes of CR LF CR LF the bytes so far end with (0...3).
    private var matched = 0

    /// Bytes were read (before the decoder sees them).
    mutating func read(_ buffer: ByteBuffer) {
        guard self.proving else {
            return
        }
        if self.headEnd == nil {
            buffer.withUnsafeReadableBytes { bytes in
                if self.received == 0, let first = bytes.first, first == 0x0D || first == 0x0A {
                    // Empty lines before a request line: llhttp skips them; not worth proving.
                    self.proving = false
                    return
                }
                var offset = 0
                while offset < bytes.count {
                    let byte = bytes[offset]
                    offset += 1
                    if byte > 0x0D {
                        // Neither CR nor LF (most bytes): the run of CR LF CR LF starts again.
                        self.matched = 0
                        continue
                    }
                    switch (self.matched, byte) {
                    case (0, 0x0D), (2, 0x0D):
                        self.matched += 1
                    case (1, 0x0A):
                        self.matched = 2
                    case (3, 0x0A):
                        self.headEnd = self.received + offset
                        self.matched = 0
                        return
                    case (_, 0x0D):
                        self.matched = 1
                    case (_, 0x0A):
                        // A bare LF: the decoder refuses it; the count would not mean anything.
                        self.proving = false
                        return
                    default:
                        self.matched = 0
                    }
                }
            }
        }
        self.received += buffer.readableBytes
    }

    /// A request ended; `bodyBytes` is its `Content-Length` body (0 for none), nil for a chunked one. Returns
    /// whether the bytes received so far are exactly this request (the decoder is between requests).
    mutating func requestEnded(bodyBytes: Int?) -> Bool {
        guard self.proving, let headEnd = self.headEnd, let bodyBytes, self.received == headEnd + bodyBytes else {
            self.proving = false
            return false
        }
        self.received = 0
        self.headEnd = nil
        self.matched = 0
        return true
    }
}
