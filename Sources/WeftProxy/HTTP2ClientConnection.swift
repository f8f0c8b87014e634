import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2

/// Runs the streams of one upstream HTTP/2 connection without a channel per stream: it sits behind
/// `NIOHTTP2Handler` (client mode: framing, HPACK, SETTINGS, PING, stream states, streams over the server's
/// concurrency limit buffered) and drives each request's stream as an `HTTP2ClientStream`, whose
/// `UpstreamHandler` sees the same request and response parts as on an HTTP/1.1 connection.
///
/// NIO's multiplexer gave every upstream stream a channel, with `HTTP2FramePayloadToHTTP1ClientCodec` and an
/// `UpstreamHandler` in its pipeline, futures to create it, and every part boxed through contexts both ways; here a
/// stream is one object and a dictionary entry, created synchronously, and request heads become header blocks in
/// one pass (`HTTP2RequestFramer`).
///
/// What the stream channels did, this does:
/// - a stream's id is taken when its first frame is written, so ids reach `NIOHTTP2Handler` in increasing order;
/// - the stream's inbound window (1 MiB) is reopened as its handler takes the response, and only then: while the
///   downstream cannot take more, the response waits in the stream and the server is stopped by the window;
/// - the connection's window (16 MiB) is reopened for what the handlers took (`ConnectionInboundWindow`);
/// - a stream is writable while the connection is and less than `highWatermark` bytes of its DATA wait for the
///   server's window: the downstream's body is read only as fast as the server takes it;
/// - a stream the server refused (`REFUSED_STREAM`, above a GOAWAY's last stream, or never opened because the
///   connection was going away) is marked refused: it never reached the application and may be retried.
final class HTTP2ClientConnection: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame
    typealias InboundOut = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    /// The stream window this connection advertises (its SETTINGS_INITIAL_WINDOW_SIZE).
    static let streamWindow = 1 << 20
    /// The connection's inbound window.
    static let connectionWindow = 1 << 24
    /// The last client stream id (2^31 - 1): a connection that used them up takes no new stream.
    private static let lastStreamID = Int(Int32.max)

    /// The context, the open streams and their writes, their read-completes and the connection's window.
    fileprivate let core = HTTP2ConnectionCore<HTTP2ClientStream>(
        connectionWindow: HTTP2ClientConnection.connectionWindow)
    private var nextStreamID = 1
    /// The lowest last stream id of the GOAWAYs the server sent.
    private var goAwayLastStreamID: HTTP2StreamID?
    /// Called when the server sends GOAWAY.
    var onGoAway: (() -> Void)?
    /// Called once the connection is active and `NIOHTTP2Handler` wrote its preface: streams may open. (The
    /// connect future completes before the channel becomes active.)
    var onActive: (() -> Void)?

    func handlerAdded(context: ChannelHandlerContext) {
        self.core.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.dropAll()
        self.core.context = nil
    }

    /// Whether a new stream can have an id.
    var hasStreamIDs: Bool { self.nextStreamID < Self.lastStreamID - 2 }

    /// A new stream for `handler`; it takes its id when it writes its first frame.
    func makeStream(for handler: UpstreamHandler) -> HTTP2ClientStream {
        let stream = HTTP2ClientStream(connection: self, handler: handler)
        handler.attachStream(stream)
        return stream
    }

    /// The next stream id, and the stream registered under it.
    fileprivate func assignID(to stream: HTTP2ClientStream) -> HTTP2StreamID {
        let id = HTTP2StreamID(self.nextStreamID)
        self.nextStreamID += 2
        self.core.streams[id] = stream
        return id
    }

    /// A stream that never opened (its first frame's write failed).
    fileprivate func forget(_ id: HTTP2StreamID) {
        self.core.streams[id] = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        context.fireChannelActive()
        let onActive = self.onActive
        self.onActive = nil
        onActive?()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = self.unwrapInboundIn(data)
        self.core.frameRead()
        switch frame.payload {
        case .headers(let headers):
            self.core.streams[frame.streamID]?.receivedHeaders(headers)
        case .data(let payload):
            self.core.streams[frame.streamID]?.receivedData(payload)
        case .goAway(let lastStreamID, _, _):
            // Streams above its last stream id were not processed: NIOHTTP2Handler closes them (StreamClosedEvent,
            // CANCEL) after this frame, and they count as refused (safe to retry).
            self.goAwayLastStreamID = min(lastStreamID, self.goAwayLastStreamID ?? lastStreamID)
            self.onGoAway?()
        default:
            // The connection's own frames are NIOHTTP2Handler's; a RST_STREAM's StreamClosedEvent follows.
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.core.readComplete()
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // Compared by type first: a failed cast of an `Any` costs as much as a successful one.
        let type = type(of: event)
        if type == NIOHTTP2WindowUpdatedEvent.self {
            if let window = event as? NIOHTTP2WindowUpdatedEvent {
                self.core.windowUpdated(window)
            }
        } else if type == StreamClosedEvent.self {
            if let closed = event as? StreamClosedEvent,
                let stream = self.core.streams.removeValue(forKey: closed.streamID)
            {
                if closed.reason == nil {
                    stream.ended()
                } else {
                    let aboveGoAway = self.goAwayLastStreamID.map { closed.streamID > $0 } ?? false
                    stream.closed(refused: closed.reason == .refusedStream || aboveGoAway)
                }
            }
        } else if type == NIOHTTP2StreamCreatedEvent.self {
            // The stream's HEADERS went out (or wait in NIOHTTP2Handler for the server's concurrency limit).
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A stream's error (a malformed response block, say) resets that stream, and its StreamClosedEvent
        // follows; NIOHTTP2Handler closes the connection on a connection error.
        if error is NIOHTTP2Errors.StreamError {
            return
        }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.dropAll()
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.core.writabilityChanged()
        context.fireChannelWritabilityChanged()
    }

    /// Every stream ends with the connection.
    private func dropAll() {
        for stream in self.core.takeAllStreams() {
            stream.closed(refused: false)
        }
    }
}

@available(*, unavailable)
extension HTTP2ClientConnection: Sendable {}

/// One request's stream on an `HTTP2ClientConnection`: what its `UpstreamHandler` writes request parts to, and
/// what hands it the response's parts.
final class HTTP2ClientStream: HTTP2ReadingStream {
    /// Strong: a write's completion may come after the connection dropped the stream.
    private let connection: HTTP2ClientConnection
    private var handler: UpstreamHandler?
    /// Taken with the first frame written.
    private var id: HTTP2StreamID?
    var inReaders = false
    /// The final response head arrived (a later HEADERS frame carries trailers).
    private var headSeen = false
    /// The request's method: a response to HEAD has no body, whatever its fields say.
    private var method: HTTPMethod = .GET
    /// The server ended its side: no window to reopen.
    private var inboundEnded = false
    /// The request's END_STREAM was written.
    private var outboundEnded = false
    /// The downstream cannot take more: parts wait here, and the window stays as it is.
    private var held = false
    private var waiting: CircularBuffer<(part: HTTPClientResponsePart, size: Int)> = []
    private var consumed = 0
    private var framer = HTTP2RequestFramer()
    private var unsent = 0
    private var wasWritable = true
    /// Reset, or closed: nothing more is written.
    private var done = false
    /// Both sides ended while response parts still wait for the downstream: the stream closes once they went.
    private var closesAfterWaiting = false

    fileprivate init(connection: HTTP2ClientConnection, handler: UpstreamHandler) {
        self.connection = connection
        self.handler = handler
    }

    var isOpen: Bool { !self.done && self.connection.core.isActive }
    var isWritable: Bool { !self.done && self.wasWritable }

    // MARK: Outbound

    func write(_ part: HTTPClientRequestPart) {
        guard !self.done else {
            return
        }
        if case .head(let head) = part {
            self.method = head.method
        }
        let frames = self.framer.frames(for: part)
        if let first = frames.first {
            self.write(first)
        }
        if let second = frames.second {
            self.write(second)
        }
    }

    func flush() {
        if let held = self.framer.flush() {
            self.write(held)
        }
        self.connection.core.flush()
    }

    private func write(_ payload: HTTP2Frame.FramePayload) {
        guard !self.done else {
            return
        }
        let id: HTTP2StreamID
        var promise: EventLoopPromise<Void>?
        if let existing = self.id {
            id = existing
        } else {
            // The stream opens with this frame. If NIOHTTP2Handler cannot open it (the server sent GOAWAY, or the
            // connection closed before it went out), the write fails and nothing reached the server.
            id = self.connection.assignID(to: self)
            self.id = id
            promise = self.connection.core.makePromise()
            promise?.futureResult.assumeIsolated().whenFailure { [self] _ in
                self.connection.forget(id)
                self.closed(refused: true)
            }
        }
        switch payload {
        case .headers(let headers) where headers.endStream:
            self.outboundEnded = true
        case .data(let data) where data.endStream:
            self.outboundEnded = true
        case .data(let data):
            // Counted as unsent until NIOHTTP2Handler wrote it (it may wait for the server's window).
            let size = data.data.readableBytes
            self.unsent += size
            let written = promise ?? self.connection.core.makePromise()
            promise = written
            written?.futureResult.assumeIsolated().whenComplete { [self] _ in
                self.unsent -= size
                self.writabilityMayHaveChanged()
            }
        default:
            break
        }
        self.connection.core.write(HTTP2Frame(streamID: id, payload: payload), promise: promise)
        self.writabilityMayHaveChanged()
    }

    func connectionWritabilityChanged() {
        self.writabilityMayHaveChanged()
    }

    private func writabilityMayHaveChanged() {
        guard !self.done else {
            return
        }
        let writable =
            self.unsent < (self.wasWritable ? HTTP2ServerStream.highWatermark : HTTP2ServerStream.lowWatermark)
            && self.connection.core.isWritable
        if writable != self.wasWritable {
            self.wasWritable = writable
            self.handler?.streamWritabilityChanged()
        }
    }

    /// The request is done with the stream: a stream still open either way is reset (`CANCEL`); one never
    /// written closes at once.
    func cancel() {
        if self.closesAfterWaiting {
            self.closed(refused: false)
            return
        }
        guard !self.done else {
            return
        }
        guard let id = self.id else {
            self.closed(refused: false)
            return
        }
        if self.inboundEnded && self.outboundEnded {
            // Both sides ended: NIOHTTP2Handler closes it (its StreamClosedEvent comes).
            return
        }
        self.done = true
        self.framer.drop()
        self.connection.core.write(HTTP2Frame(streamID: id, payload: .rstStream(.cancel)), promise: nil)
        self.connection.core.flush()
    }

    // MARK: Inbound

    fileprivate func receivedHeaders(_ payload: HTTP2Frame.FramePayload.Headers) {
        guard !self.done else {
            return
        }
        if payload.endStream {
            self.inboundEnded = true
        }
        if self.headSeen {
            self.deliver(.end(HTTPHeaders(regularFieldsOf: payload.headers)), size: 0)
            return
        }
        guard
            let head = HTTPResponseHead(
                http2Block: payload.headers, requestMethod: self.method, endStream: payload.endStream)
        else {
            self.resetMalformed()
            return
        }
        if head.status.code >= 200 {
            self.headSeen = true
        } else if payload.endStream {
            // An informational response cannot end the stream.
            self.resetMalformed()
            return
        }
        self.deliver(.head(head), size: 0)
        if payload.endStream {
            self.deliver(.end(nil), size: 0)
        }
    }

    fileprivate func receivedData(_ payload: HTTP2Frame.FramePayload.Data) {
        guard !self.done, case .byteBuffer(let buffer) = payload.data else {
            return
        }
        let size = buffer.readableBytes + (payload.paddingBytes.map { $0 + 1 } ?? 0)
        guard self.headSeen else {
            // DATA before a final response head.
            self.resetMalformed()
            return
        }
        if payload.endStream {
            self.inboundEnded = true
            if buffer.readableBytes > 0 {
                self.deliver(.body(buffer), size: size)
            } else {
                self.consumed += size
            }
            self.deliver(.end(nil), size: 0)
        } else {
            self.deliver(.body(buffer), size: size)
        }
    }

    /// A response the proxy cannot read: the stream is reset, and the request learns it as a reset.
    private func resetMalformed() {
        guard let id = self.id else {
            return
        }
        self.done = true
        self.framer.drop()
        self.connection.core.write(HTTP2Frame(streamID: id, payload: .rstStream(.protocolError)), promise: nil)
        self.connection.core.flush()
    }

    private func deliver(_ part: HTTPClientResponsePart, size: Int) {
        guard let handler = self.handler else {
            return
        }
        guard !self.held, self.waiting.isEmpty else {
            self.waiting.append((part, size))
            self.connection.core.parked(size)
            return
        }
        self.consumed += size
        handler.received(part)
        self.connection.core.streamRead(self)
    }

    func readComplete() {
        guard let handler = self.handler else {
            return
        }
        handler.streamReadComplete()
        self.reopenWindow()
        if !handler.wantsRead {
            self.held = true
        }
    }

    /// The downstream can take more: what waited is delivered (and the window reopened for it).
    func resumeReads() {
        guard self.held || !self.waiting.isEmpty else {
            return
        }
        self.held = false
        var delivered = false
        while let handler = self.handler, let next = self.waiting.popFirst() {
            self.consumed += next.size
            self.connection.core.released(next.size)
            handler.received(next.part)
            delivered = true
            if !handler.wantsRead {
                self.held = true
                break
            }
        }
        if delivered {
            self.connection.core.streamRead(self)
        }
        if self.closesAfterWaiting, self.waiting.isEmpty {
            self.closed(refused: false)
        }
    }

    private func reopenWindow() {
        guard !self.inboundEnded, !self.done, let id = self.id,
            self.consumed >= HTTP2ClientConnection.streamWindow / 2
        else {
            return
        }
        let increment = self.consumed
        self.consumed = 0
        self.connection.core.write(
            HTTP2Frame(streamID: id, payload: .windowUpdate(windowSizeIncrement: increment)), promise: nil)
        self.connection.core.flush()
    }

    /// Both sides ended (NIOHTTP2Handler closed the stream cleanly): the response's last parts may still wait for
    /// the downstream (a held stream); the stream closes once they are delivered.
    fileprivate func ended() {
        guard !self.waiting.isEmpty, self.handler != nil else {
            self.closed(refused: false)
            return
        }
        self.done = true
        self.closesAfterWaiting = true
    }

    /// The stream closed (a reset either way, a refused open, the connection went, or it ended and nothing waits).
    fileprivate func closed(refused: Bool) {
        self.done = true
        self.closesAfterWaiting = false
        self.framer.drop()
        let parked = self.waiting.reduce(0) { $0 + $1.size }
        self.waiting.removeAll()
        if parked > 0 {
            self.connection.core.released(parked)
        }
        guard let handler = self.handler else {
            return
        }
        self.handler = nil
        handler.streamClosed(refused: refused)
    }
}

@available(*, unavailable)
extension HTTP2ClientStream: Sendable {}

/// How one upstream HTTP/2 stream's request parts become frames. As NIO's `HTTP2FramePayloadToHTTP1ClientCodec`:
/// the newest frame is held until the next part or flush, so that the request's end rides on it (a GET is one
/// HEADERS frame with END_STREAM). The head becomes a header block in one pass: `:method`, `:scheme`,
/// `:authority` (from `host`), `:path`, then the fields with names lowercased as ASCII, without `host` and the
/// connection-specific ones, and `te` only as `trailers`.
struct HTTP2RequestFramer {
    private var held: HTTP2Frame.FramePayload?

    mutating func frames(
        for part: HTTPClientRequestPart
    ) -> (first: HTTP2Frame.FramePayload?, second: HTTP2Frame.FramePayload?) {
        switch part {
        case .head(let head):
            let before = self.held
            self.held = .headers(.init(headers: Self.block(head)))
            return (before, nil)
        case .body(let data):
            let before = self.held
            self.held = .data(.init(data: data))
            return (before, nil)
        case .end(nil):
            let held = self.held
            self.held = nil
            switch held {
            case .headers(var headers):
                headers.endStream = true
                return (.headers(headers), nil)
            case .data(var data):
                data.endStream = true
                return (.data(data), nil)
            default:
                return (.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true)), nil)
            }
        case .end(let trailers?):
            let held = self.held
            self.held = nil
            return (held, .headers(.init(headers: HTTP2ResponseFramer.block(status: nil, trailers), endStream: true)))
        }
    }

    /// At a flush: the held frame.
    mutating func flush() -> HTTP2Frame.FramePayload? {
        let held = self.held
        self.held = nil
        return held
    }

    mutating func drop() {
        self.held = nil
    }

    /// A request head as an HTTP/2 header block (`http`: the mesh's own TLS is below HTTP, as for HTTP/1.1).
    static func block(_ head: HTTPRequestHead) -> HPACKHeaders {
        var block = HPACKHeaders()
        block.reserveCapacity(head.headers.count + 4)
        block.add(name: ":method", value: head.method.rawValue)
        block.add(name: ":scheme", value: "http")
        if let host = head.headers.first(name: "host") {
            block.add(name: ":authority", value: host)
        }
        block.add(name: ":path", value: head.uri)
        for (name, value) in head.headers {
            let skip = HTTP1Head.withUTF8(name) { bytes in
                HTTP2RequestBlock.isConnectionSpecific(bytes)
                    || (bytes.count == 4 && HTTP2RequestBlock.equalsIgnoringCase(bytes, "host"))
                    || (bytes.count == 2 && HTTP2RequestBlock.equalsIgnoringCase(bytes, "te")
                        && !value.utf8.elementsEqual("trailers".utf8))
            }
            if !skip {
                block.add(name: HTTP2ResponseFramer.lowercased(name), value: value)
            }
        }
        return block
    }
}

extension HTTPResponseHead {
    /// The response an HTTP/2 response header block stands for, as NIO's `HTTP2FramePayloadToHTTP1ClientCodec`
    /// makes it: the fields without `:status`, and the framing an HTTP/1.1 writer expects (`content-length: 0` or
    /// chunked) for a final response that may have a body and came without `content-length`. Nil without a
    /// three-digit `:status`.
    init?(http2Block block: HPACKHeaders, requestMethod: HTTPMethod, endStream: Bool) {
        var status: Int?
        var hasContentLength = false
        var fields: [(String, String)] = []
        fields.reserveCapacity(block.count)
        for (name, value, _) in block {
            if name.utf8.first == UInt8(ascii: ":") {
                guard name == ":status", status == nil, value.utf8.count == 3, let code = Int(value), code >= 100
                else {
                    return nil
                }
                status = code
                continue
            }
            if name == "content-length" {
                hasContentLength = true
            }
            fields.append((name, value))
        }
        guard let status else {
            return nil
        }
        if status >= 200, status != 204, status != 304, requestMethod != .HEAD, requestMethod != .CONNECT,
            !hasContentLength
        {
            fields.append(endStream ? ("content-length", "0") : ("transfer-encoding", "chunked"))
        }
        self.init(version: .http2, status: HTTPResponseStatus(statusCode: status), headers: HTTPHeaders(fields))
    }
}
