import NIOCore

/// One side of an opaque byte tunnel between two channels on the same event loop (TCP proxying, CONNECT,
/// WebSocket after its `101`): bytes read on one side are written to the other, reading stops while the
/// other side cannot write (backpressure), and when either side closes the other is closed once its writes
/// are flushed.
final class TunnelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var context: ChannelHandlerContext?
    private var partner: TunnelHandler?
    private var readPending = false
    private var pendingWrites: [ByteBuffer] = []
    private var closed = false
    private let onBytes: ((Int) -> Void)?

    /// `onBytes` is told the size of each buffer read on this side.
    init(onBytes: ((Int) -> Void)? = nil) {
        self.onBytes = onBytes
    }

    /// Joins two tunnel sides once `ready` (both pipelines rebuilt) completes, on `loop` (both sides' loop);
    /// until then each side keeps what it reads. When `ready` fails, or a side closed meanwhile, both close.
    static func join(
        _ first: TunnelHandler, _ second: TunnelHandler, when ready: EventLoopFuture<Void>, on loop: any EventLoop
    ) {
        let bound = NIOLoopBound((first, second), eventLoop: loop)
        ready.hop(to: loop).whenComplete { result in
            let (first, second) = bound.value
            guard case .success = result, !first.closed, !second.closed else {
                first.close()
                second.close()
                return
            }
            Self.join(first, second)
        }
    }

    /// Joins two tunnel sides; each forwards to the other from now on.
    static func join(_ first: TunnelHandler, _ second: TunnelHandler) {
        first.partner = second
        second.partner = first
        first.flushPending()
        second.flushPending()
        first.resumeRead()
        second.resumeRead()
    }

    private func resumeRead() {
        if self.readPending, let partner = self.partner, partner.isWritable {
            self.readPending = false
            self.context?.read()
        }
    }

    private var isWritable: Bool { self.context?.channel.isWritable ?? false }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = self.unwrapInboundIn(data)
        self.onBytes?(buffer.readableBytes)
        if let partner = self.partner {
            partner.write(buffer)
        } else {
            self.pendingWrites.append(buffer)
        }
    }

    /// Bytes read before the partner joined wait here and go out when it does.
    private func flushPending() {
        guard let partner = self.partner, !self.pendingWrites.isEmpty else {
            return
        }
        for buffer in self.pendingWrites {
            partner.write(buffer)
        }
        self.pendingWrites.removeAll()
        partner.context?.flush()
    }

    /// Writes and flushes bytes of the proxy's own (the `200` that opens a CONNECT tunnel).
    func writeRaw(_ buffer: ByteBuffer) {
        self.context?.writeAndFlush(self.wrapOutboundOut(buffer), promise: nil)
    }

    private func write(_ buffer: ByteBuffer) {
        self.context?.write(self.wrapOutboundOut(buffer), promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.partner?.context?.flush()
    }

    func read(context: ChannelHandlerContext) {
        guard let partner = self.partner, partner.isWritable else {
            // No partner yet, or it cannot take more: read later.
            self.readPending = true
            return
        }
        context.read()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, let partner = self.partner, partner.readPending {
            partner.readPending = false
            partner.context?.read()
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.closed = true
        if let partner = self.partner, !partner.closed, let partnerContext = partner.context {
            partnerContext.writeAndFlush(partner.wrapOutboundOut(ByteBuffer())).assumeIsolated().whenComplete { _ in
                partnerContext.close(promise: nil)
            }
        }
        self.partner = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    /// Closes this side (and so, the other).
    func close() {
        self.context?.close(promise: nil)
    }
}

@available(*, unavailable)
extension TunnelHandler: Sendable {}
