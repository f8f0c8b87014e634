import NIOCore

/// Defers `flush` on an HTTP/2 connection to the end of the event loop's current tick, once. NIO's HTTP/2
/// handler coalesces the flushes of its streams only while the connection itself is reading; a proxy's
/// streams write when their upstreams answer, so without this every stream's response would cost its own
/// `write` system call. Writes pass through untouched.
final class FlushCoalescingHandler: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var scheduled = false

    func flush(context: ChannelHandlerContext) {
        guard !self.scheduled else {
            return
        }
        self.scheduled = true
        context.eventLoop.assumeIsolated().execute { [self] in
            self.scheduled = false
            context.flush()
        }
    }
}

@available(*, unavailable)
extension FlushCoalescingHandler: Sendable {}
