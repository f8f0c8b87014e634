import NIOCore
import NIOHTTP1
import NIOHTTP2

/// What an upstream stream delivers to the request that holds it.
protocol UpstreamDelegate: AnyObject {
    var isWritable: Bool { get }
    func upstreamRead(_ part: HTTPClientResponsePart, from upstream: UpstreamHandler)
    func upstreamClosed(_ upstream: UpstreamHandler)
    func flushDownstream()
    func resumeReads()
}

/// The last handler of an upstream stream: an HTTP/1.1 connection, or one HTTP/2 stream (behind
/// `HTTP2FramePayloadToHTTP1ClientCodec`, so both look the same). Hands every response part to the request
/// that holds it (its delegate), on the same event loop, and reads from the upstream only while the
/// downstream can take more (backpressure). Between requests an HTTP/1.1 connection sits idle in its pool.
final class UpstreamHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    private weak var delegate: (any UpstreamDelegate)?
    private weak var pool: UpstreamPool?
    private var context: ChannelHandlerContext?
    private var readPending = false
    private var idleTimer: Scheduled<Void>?
    private var idleDeadline: NIODeadline?
    /// The pool key (endpoint and protocol).
    let key: UpstreamKey
    let cluster: String
    let kind: UpstreamProtocol
    /// Requests this connection has served.
    var requestsServed = 0
    /// Whether this connection holds one of its cluster's `maxConnections` slots (HTTP/1.1).
    var countsTowardLimit: Bool
    /// Called when an HTTP/2 stream closes (its connection counts open streams).
    var onClose: (() -> Void)?
    /// The HTTP/2 upstream refused this stream (RST_STREAM REFUSED_STREAM, or above a GOAWAY's last stream): it
    /// never reached the application, so it is safe to retry (`refused-stream`).
    private(set) var refusedStream = false

    init(pool: UpstreamPool, key: UpstreamKey, cluster: String, kind: UpstreamProtocol) {
        self.pool = pool
        self.key = key
        self.cluster = cluster
        self.kind = kind
        self.countsTowardLimit = kind == .http1
    }

    var channel: (any Channel)? { self.context?.channel }
    var isActive: Bool { self.context?.channel.isActive ?? false }
    var isWritable: Bool { self.context?.channel.isWritable ?? false }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        self.idleTimer?.cancel()
        self.idleTimer = nil
        if context.channel.isActive {
            // Leaving a live connection (it became a tunnel): it is no pooled connection any more.
            self.pool?.connectionClosed(self)
            self.onClose?()
            self.onClose = nil
        }
    }

    /// Hands this stream to `delegate` for one request.
    func attach(_ delegate: any UpstreamDelegate) {
        self.delegate = delegate
        if self.readPending, delegate.isWritable {
            self.resumeReads()
        }
    }

    /// The request is done with this stream: late events go nowhere.
    func detach() {
        self.delegate = nil
    }

    /// Idle in the pool: closes after `timeout` unless taken again. The timer is lazy (scheduled once,
    /// rescheduled when it finds the deadline moved), so reuse costs no timer work.
    func enterIdle(timeout: TimeAmount) {
        let deadline = NIODeadline.now() + timeout
        self.idleDeadline = deadline
        if self.idleTimer == nil {
            self.scheduleIdleTimer(at: deadline)
        }
        // Read while idle, so that the peer closing the connection is noticed at once.
        self.resumeReads()
    }

    private func scheduleIdleTimer(at deadline: NIODeadline) {
        guard let context = self.context else {
            return
        }
        self.idleTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            self.idleTimer = nil
            guard let deadline = self.idleDeadline else {
                return
            }
            if deadline > .now() {
                self.scheduleIdleTimer(at: deadline)
            } else {
                self.close()
            }
        }
    }

    func leaveIdle() {
        self.idleDeadline = nil
    }

    func send(_ part: HTTPClientRequestPart) {
        self.context?.write(self.wrapOutboundOut(part), promise: nil)
    }

    func flush() {
        self.context?.flush()
    }

    func close() {
        self.context?.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let delegate = self.delegate else {
            // A response nobody asked for (idle connection): this connection cannot be trusted any more.
            context.close(promise: nil)
            return
        }
        delegate.upstreamRead(self.unwrapInboundIn(data), from: self)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.delegate?.flushDownstream()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.idleTimer?.cancel()
        self.idleTimer = nil
        self.pool?.connectionClosed(self)
        self.onClose?()
        self.onClose = nil
        self.delegate?.upstreamClosed(self)
        self.delegate = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let closed = error as? NIOHTTP2Errors.StreamClosed, closed.errorCode == .refusedStream {
            self.refusedStream = true
        }
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.delegate?.resumeReads()
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if let delegate = self.delegate, !delegate.isWritable {
            self.readPending = true
        } else {
            context.read()
        }
    }

    /// Called when the downstream became writable again.
    func resumeReads() {
        guard self.readPending, let context = self.context else {
            return
        }
        self.readPending = false
        context.read()
    }
}

@available(*, unavailable)
extension UpstreamHandler: Sendable {}
