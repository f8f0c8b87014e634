import NIOCore
import NIOHTTP1

/// What an upstream stream delivers to the request that holds it.
protocol UpstreamDelegate: AnyObject {
    var isWritable: Bool { get }
    func upstreamRead(_ part: HTTPClientResponsePart, from upstream: UpstreamHandler)
    func upstreamClosed(_ upstream: UpstreamHandler)
    func flushDownstream()
    func resumeReads()
}

/// One upstream stream: the last handler of an HTTP/1.1 connection, or one HTTP/2 stream, which it drives
/// without a pipeline (`HTTP2ClientStream`, on an `HTTP2ClientConnection`): both look the same to the request.
/// Hands every response part to the request that holds it (its delegate), on the same event loop, and reads from
/// the upstream only while the downstream can take more (backpressure). Between requests an HTTP/1.1 connection
/// sits idle in its pool.
final class UpstreamHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    private weak var delegate: (any UpstreamDelegate)?
    private weak var pool: UpstreamPool?
    private var context: ChannelHandlerContext?
    /// The HTTP/2 stream this handler drives (nil: an HTTP/1.1 connection, in a pipeline).
    private var stream: HTTP2ClientStream?
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

    /// The HTTP/1.1 connection's channel (nil for an HTTP/2 stream).
    var channel: (any Channel)? { self.context?.channel }
    var isActive: Bool { self.stream?.isOpen ?? self.context?.channel.isActive ?? false }
    var isWritable: Bool { self.stream?.isWritable ?? self.context?.channel.isWritable ?? false }

    /// Drives `stream` (HTTP/2) instead of a channel.
    func attachStream(_ stream: HTTP2ClientStream) {
        self.stream = stream
    }

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
        if let stream = self.stream {
            stream.write(part)
        } else {
            self.context?.write(self.wrapOutboundOut(part), promise: nil)
        }
    }

    func flush() {
        if let stream = self.stream {
            stream.flush()
        } else {
            self.context?.flush()
        }
    }

    /// Closes the connection (HTTP/1.1), or resets the stream unless both its sides ended (HTTP/2).
    func close() {
        if let stream = self.stream {
            stream.cancel()
        } else {
            self.context?.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.received(self.unwrapInboundIn(data))
    }

    /// A response part from the connection or the stream.
    func received(_ part: HTTPClientResponsePart) {
        guard let delegate = self.delegate else {
            // A response nobody asked for (idle connection): this connection cannot be trusted any more.
            self.close()
            return
        }
        delegate.upstreamRead(part, from: self)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.delegate?.flushDownstream()
    }

    /// The stream's read is complete (HTTP/2).
    func streamReadComplete() {
        self.delegate?.flushDownstream()
    }

    /// Whether the stream may deliver more response parts now (HTTP/2): the downstream can take them.
    var wantsRead: Bool { self.delegate?.isWritable ?? true }

    /// The stream's writability changed (HTTP/2): the request may send more of its body, or must stop.
    func streamWritabilityChanged() {
        self.delegate?.resumeReads()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.ended()
        context.fireChannelInactive()
    }

    /// The stream closed (HTTP/2); `refused`: the server did not take it (it never reached the application).
    func streamClosed(refused: Bool) {
        if refused {
            self.refusedStream = true
        }
        self.ended()
    }

    private func ended() {
        self.idleTimer?.cancel()
        self.idleTimer = nil
        self.pool?.connectionClosed(self)
        self.onClose?()
        self.onClose = nil
        self.delegate?.upstreamClosed(self)
        self.delegate = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
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
        if let stream = self.stream {
            stream.resumeReads()
            return
        }
        guard self.readPending, let context = self.context else {
            return
        }
        self.readPending = false
        context.read()
    }
}

@available(*, unavailable)
extension UpstreamHandler: Sendable {}
