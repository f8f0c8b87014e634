import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2

/// Serves the streams of one downstream HTTP/2 connection without a channel per stream: it sits behind
/// `NIOHTTP2Handler` (which runs the connection: framing, HPACK, SETTINGS, PING, the connection's flow-control
/// window, stream states) and hands each stream's frames, as request parts, to that stream's `ProxyServerHandler`,
/// and the handler's response parts back as frames.
///
/// NIO's stream multiplexer gave every stream a channel: a pipeline with two handlers, promises and futures for
/// its set-up, and every part passed through pipeline contexts and type-erased wrappers both ways. That was a
/// third of an h2c request's instructions; here a stream is one object (`HTTP2ServerStream`) and a dictionary
/// entry.
///
/// What the stream channels did, this does:
/// - request header blocks are checked against RFC 9113 (`HTTP2RequestBlock`; the connection runs with NIOHTTP2's
///   own validation off): a malformed block resets the stream with `PROTOCOL_ERROR` and nothing of it is routed;
/// - the stream's inbound window is reopened (`WINDOW_UPDATE`) as its handler takes the data, and only then: a
///   handler that holds its reads (its upstream is slow) stops the client once the window (1 MiB) is used up;
/// - the connection's window (16 MiB) is reopened for what the handlers took, not for what waits in held streams
///   (`ConnectionInboundWindow`): all a client can park on one connection is that window;
/// - a stream is writable while the connection is and less than `highWatermark` bytes of its DATA wait in
///   `NIOHTTP2Handler` for the client's window: the upstream is read only as fast as the client takes the body;
/// - a response's last body chunk and its end go out as one DATA frame with `END_STREAM`.
///
/// Draining (`ChannelShouldQuiesceEvent`): `GOAWAY` (no error) naming the last stream taken; the streams in flight
/// finish, then the connection closes.
final class HTTP2ServerConnection: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame
    typealias InboundOut = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    /// The stream window this connection advertises (its SETTINGS_INITIAL_WINDOW_SIZE).
    static let streamWindow = 1 << 20
    /// The connection's inbound window (what all its streams may have in flight together).
    static let connectionWindow = 1 << 24

    private let shared: ProxyListenerContext
    private let peer: PeerIdentity?
    /// The context, the open streams and their writes, their read-completes and the connection's window.
    fileprivate let core = HTTP2ConnectionCore<HTTP2ServerStream>(
        connectionWindow: HTTP2ServerConnection.connectionWindow)
    private var lastStreamID = HTTP2StreamID.rootStream
    private var draining = false

    init(_ shared: ProxyListenerContext, peer: PeerIdentity?) {
        self.shared = shared
        self.peer = peer
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.core.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.dropAll()
        self.core.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = self.unwrapInboundIn(data)
        self.core.frameRead()
        switch frame.payload {
        case .headers(let headers):
            if let stream = self.core.streams[frame.streamID] {
                stream.receivedHeaders(headers)
            } else if frame.streamID > self.lastStreamID, !self.draining {
                // A new stream (NIOHTTP2Handler let it open: the id is new, and within the concurrency limit; after
                // GOAWAY, it refuses streams above the last one taken itself).
                self.lastStreamID = frame.streamID
                let handler = ProxyServerHandler(self.shared, isHTTP2: true, peer: self.peer)
                let stream = HTTP2ServerStream(
                    id: frame.streamID, connection: self, handler: handler, eventLoop: context.eventLoop,
                    allocator: context.channel.allocator)
                self.core.streams[frame.streamID] = stream
                handler.attach(stream)
                stream.receivedHeaders(headers)
            }
        case .data(let payload):
            self.core.streams[frame.streamID]?.receivedData(payload)
        default:
            // The connection's own frames (and RST_STREAM: its StreamClosedEvent follows) are NIOHTTP2Handler's.
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.core.readComplete()
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // NIOHTTP2Handler sends several events per stream (created, windows changed, closed): the type is compared
        // first, so that each costs at most one cast (a failed cast of an `Any` costs as much as a successful one).
        let type = type(of: event)
        if type == NIOHTTP2WindowUpdatedEvent.self {
            if let window = event as? NIOHTTP2WindowUpdatedEvent {
                self.core.windowUpdated(window)
            }
        } else if type == StreamClosedEvent.self {
            if let closed = event as? StreamClosedEvent,
                let stream = self.core.streams.removeValue(forKey: closed.streamID)
            {
                stream.closed()
            }
            self.closeIfDrained()
        } else if type == NIOHTTP2StreamCreatedEvent.self {
            // The stream's HEADERS follow (a stream the proxy serves begins with them).
        } else if type == ChannelShouldQuiesceEvent.self {
            self.drain()
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    /// Sends GOAWAY: no new stream is taken; the connection closes once the streams in flight are done.
    private func drain() {
        guard !self.draining, let context = self.core.context else {
            return
        }
        self.draining = true
        let goAway = HTTP2Frame(
            streamID: .rootStream,
            payload: .goAway(lastStreamID: self.lastStreamID, errorCode: .noError, opaqueData: nil))
        context.writeAndFlush(self.wrapOutboundOut(goAway), promise: nil)
        self.closeIfDrained()
    }

    private func closeIfDrained() {
        guard self.draining, self.core.streams.isEmpty, let context = self.core.context else {
            return
        }
        // Not now: the last stream may be closing inside its answer's write, which is still to be flushed.
        context.eventLoop.assumeIsolated().execute {
            context.flush()
            context.close(promise: nil)
        }
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
            stream.closed()
        }
    }
}

@available(*, unavailable)
extension HTTP2ServerConnection: Sendable {}

/// One request stream of an `HTTP2ServerConnection`: the `Downstream` its `ProxyServerHandler` reads from and
/// writes to.
final class HTTP2ServerStream: HTTP2ReadingStream {
    let id: HTTP2StreamID
    /// Strong: a write's completion may come after the connection dropped the stream (both go together).
    private let connection: HTTP2ServerConnection
    private var handler: ProxyServerHandler?
    /// In the connection's list of streams that read in this read.
    var inReaders = false
    /// The request's head arrived (a later HEADERS frame carries trailers).
    private var headSeen = false
    /// The client ended its side (END_STREAM): no window to reopen.
    private var inboundEnded = false
    /// The handler holds its reads: parts wait here, and the window stays as it is.
    private var held = false
    private var waiting: CircularBuffer<(part: HTTPServerRequestPart, size: Int)> = []
    /// Bytes the handler took since the last WINDOW_UPDATE.
    private var consumed = 0
    /// The response's frames (the last body chunk held, to go out with the end).
    private var framer = HTTP2ResponseFramer()
    /// Bytes of this stream's DATA written but not yet on the wire (they wait for the client's window).
    private var unsent = 0
    private var wasWritable = true
    /// Reset by the proxy, or closed: nothing more is written.
    private var done = false

    /// Above this many unsent bytes the stream is not writable; below `lowWatermark` it is again.
    static let highWatermark = 1 << 16
    static let lowWatermark = 1 << 15

    let eventLoop: any EventLoop
    let allocator: ByteBufferAllocator

    fileprivate init(
        id: HTTP2StreamID, connection: HTTP2ServerConnection, handler: ProxyServerHandler, eventLoop: any EventLoop,
        allocator: ByteBufferAllocator
    ) {
        self.id = id
        self.connection = connection
        self.handler = handler
        self.eventLoop = eventLoop
        self.allocator = allocator
    }

    var remoteAddress: SocketAddress? { self.connection.core.remoteAddress }
    /// Below `highWatermark` unsent bytes (once above it, until below `lowWatermark`), with the connection writable.
    var isWritable: Bool { !self.done && self.wasWritable }

    // MARK: Inbound

    fileprivate func receivedHeaders(_ payload: HTTP2Frame.FramePayload.Headers) {
        guard !self.done else {
            return
        }
        let isTrailers = self.headSeen
        self.headSeen = true
        if payload.endStream {
            self.inboundEnded = true
        }
        if HTTP2RequestBlock.violation(in: payload.headers, isTrailers: isTrailers) != nil {
            self.reset(.protocolError)
            return
        }
        if isTrailers {
            self.deliver(.end(HTTPHeaders(regularFieldsOf: payload.headers)), size: 0)
            return
        }
        guard let head = HTTPRequestHead(http2Block: payload.headers, endStream: payload.endStream) else {
            // No :path or :scheme (a CONNECT: the proxy offers no CONNECT over HTTP/2).
            self.reset(.protocolError)
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
        if payload.endStream {
            self.inboundEnded = true
            if buffer.readableBytes > 0 {
                self.deliver(.body(buffer), size: size)
            }
            self.deliver(.end(nil), size: 0)
        } else {
            self.deliver(.body(buffer), size: size)
        }
    }

    private func deliver(_ part: HTTPServerRequestPart, size: Int) {
        guard let handler = self.handler else {
            // The stream closed while this frame's parts were handed over: nothing takes the rest.
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
        handler.readComplete()
        self.reopenWindow()
        if !handler.wantsRead() {
            self.held = true
        }
    }

    /// The handler wants more: what waited is delivered (and the window reopened for it).
    func resumeReads() {
        self.held = false
        var delivered = false
        while let handler = self.handler, let next = self.waiting.popFirst() {
            self.consumed += next.size
            self.connection.core.released(next.size)
            handler.received(next.part)
            delivered = true
        }
        if delivered {
            self.connection.core.streamRead(self)
        }
    }

    /// Gives the client back the window the handler used, once half of it is used.
    private func reopenWindow() {
        guard !self.inboundEnded, !self.done, self.consumed >= HTTP2ServerConnection.streamWindow / 2 else {
            return
        }
        let increment = self.consumed
        self.consumed = 0
        self.connection.core.write(
            HTTP2Frame(streamID: self.id, payload: .windowUpdate(windowSizeIncrement: increment)), promise: nil)
        self.connection.core.flush()
    }

    // MARK: Outbound

    func write(_ part: HTTPServerResponsePart) {
        guard !self.done else {
            return
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

    /// Writes one frame. A DATA frame that does not end the stream counts as unsent until the connection wrote it
    /// (it may wait for the client's window): the stream is not writable while too much waits.
    private func write(_ payload: HTTP2Frame.FramePayload) {
        guard case .data(let data) = payload, !data.endStream else {
            self.connection.core.write(HTTP2Frame(streamID: self.id, payload: payload), promise: nil)
            return
        }
        let size = data.data.readableBytes
        self.unsent += size
        let promise = self.connection.core.makePromise()
        promise?.futureResult.assumeIsolated().whenComplete { [self] _ in
            self.unsent -= size
            self.writabilityMayHaveChanged()
        }
        self.connection.core.write(HTTP2Frame(streamID: self.id, payload: payload), promise: promise)
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
            self.unsent < (self.wasWritable ? Self.highWatermark : Self.lowWatermark) && self.connection.core.isWritable
        if writable != self.wasWritable {
            self.wasWritable = writable
            self.handler?.writabilityChanged()
        }
    }

    /// Resets the stream (what the proxy's `close` means for a stream), unless it is done already.
    func reset(_ code: HTTP2ErrorCode) {
        guard !self.done else {
            return
        }
        if let held = self.framer.flush() {
            // What the proxy wrote before it reset the stream (an aborted response's last chunk) goes out first.
            self.write(held)
        }
        self.done = true
        self.connection.core.write(HTTP2Frame(streamID: self.id, payload: .rstStream(code)), promise: nil)
        self.connection.core.flush()
    }

    /// The stream closed (both sides ended, a reset either way, or the connection went): the handler learns it
    /// as a closed downstream, and lets go of it.
    fileprivate func closed() {
        self.done = true
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
        handler.downstreamClosed()
        handler.detached()
    }
}

@available(*, unavailable)
extension HTTP2ServerStream: Sendable {}

extension HTTPRequestHead {
    /// The request an HTTP/2 request header block stands for, as NIO's `HTTP2FramePayloadToHTTP1ServerCodec` makes
    /// it: `host` from `:authority` when the block has none, and the framing an HTTP/1.1 reader expects
    /// (`content-length: 0` or chunked) for a method that carries a body and a block without `content-length`. Nil
    /// when `:method`, `:path`, `:scheme` or `:authority` is missing. The block was checked (`HTTP2RequestBlock`).
    init?(http2Block block: HPACKHeaders, endStream: Bool) {
        var method: String?
        var path: String?
        var authority: String?
        var scheme = false
        var hasHost = false
        var hasContentLength = false
        var regular = 0
        for (name, value, _) in block {
            switch name {
            case ":method": method = value
            case ":path": path = value
            case ":authority": authority = value
            case ":scheme": scheme = true
            case "host":
                hasHost = true
                regular += 1
            case "content-length":
                hasContentLength = true
                regular += 1
            default: regular += 1
            }
        }
        guard let method, let path, let authority, scheme else {
            return nil
        }
        let httpMethod = HTTPMethod(rawValue: method)
        var fields: [(String, String)] = []
        fields.reserveCapacity(regular + 1)
        if !hasHost {
            fields.append(("host", authority))
        }
        switch httpMethod {
        case .GET, .HEAD, .DELETE, .CONNECT, .TRACE:
            break
        default:
            if !hasContentLength {
                fields.append(endStream ? ("content-length", "0") : ("transfer-encoding", "chunked"))
            }
        }
        HTTPHeaders.appendRegularFields(of: block, to: &fields)
        self.init(version: .http2, method: httpMethod, uri: path, headers: HTTPHeaders(fields))
    }
}

extension HTTPHeaders {
    /// A trailer block's fields (it has no pseudo-header field: `HTTP2RequestBlock` checked it).
    init(regularFieldsOf block: HPACKHeaders) {
        var fields: [(String, String)] = []
        fields.reserveCapacity(block.count)
        Self.appendRegularFields(of: block, to: &fields)
        self.init(fields)
    }

    /// Appends `block`'s fields that are not pseudo-header fields, in order.
    fileprivate static func appendRegularFields(of block: HPACKHeaders, to fields: inout [(String, String)]) {
        for (name, value, _) in block where name.utf8.first != UInt8(ascii: ":") {
            fields.append((name, value))
        }
    }
}

/// The inbound flow-control window of a downstream HTTP/2 connection, reopened for the DATA its streams' handlers
/// took, not for what waits in a stream whose handler holds its reads (its upstream is slow). NIO's multiplexer
/// reopened the connection's window as DATA arrived, so what held streams kept was bounded only by their number
/// times their window (1,000 × 1 MiB); here it is bounded by the connection's window (16 MiB): the window is
/// reopened to `target` less what waits, once half of that was taken. Taken bytes always come back, so streams
/// that are not held go on while others wait (until what waits fills the whole window).
struct ConnectionInboundWindow {
    let target: Int
    /// The window's size as `NIOHTTP2Handler` last reported it (what the client may still send), with the
    /// increments sent since.
    private var size: Int?
    /// DATA bytes received and waiting in held streams.
    private(set) var waiting = 0

    init(target: Int) {
        self.target = target
    }

    /// `NIOHTTP2Handler` reports the window's size (DATA arrived, or an update was sent): the increment to send.
    mutating func sized(_ size: Int) -> Int? {
        self.size = size
        return self.increment()
    }

    /// `bytes` of DATA received now wait in a held stream.
    mutating func parked(_ bytes: Int) {
        self.waiting += bytes
    }

    /// `bytes` that waited went to their handler, or were dropped with their stream: the increment to send.
    mutating func released(_ bytes: Int) -> Int? {
        self.waiting = max(0, self.waiting - bytes)
        return self.increment()
    }

    private mutating func increment() -> Int? {
        guard let size = self.size else {
            // Nothing received yet: the window is the client's initial one.
            return nil
        }
        // What is not waiting may be open; what of it is not open was taken: reopened once that is half of it.
        let free = self.target - self.waiting
        let taken = free - size
        guard taken > 0, taken * 2 >= free else {
            return nil
        }
        self.size = free
        return taken
    }
}
