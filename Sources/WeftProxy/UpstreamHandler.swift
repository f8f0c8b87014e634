import NIOCore
import NIOHTTP1

/// The last handler of an upstream (proxy to app or service) connection: hands every response part to the
/// downstream `ProxyServerHandler` that opened it, on the same event loop, and reads from the upstream only
/// while the downstream can take more (backpressure).
final class UpstreamHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    private weak var downstream: ProxyServerHandler?
    private var context: ChannelHandlerContext?
    private var readPending = false
    /// `host:port`, to decide whether a kept-alive connection can take the next request.
    let key: String

    init(downstream: ProxyServerHandler, key: String) {
        self.downstream = downstream
        self.key = key
    }

    var channel: (any Channel)? { self.context?.channel }
    var isWritable: Bool { self.context?.channel.isWritable ?? false }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
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
        self.downstream?.upstreamRead(self.unwrapInboundIn(data), from: self)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.downstream?.flushDownstream()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.downstream?.upstreamClosed(self)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.downstream?.resumeReads()
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if let downstream = self.downstream, !downstream.isWritable {
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
