import NIOCore

/// What a downstream connection gets past `ProxyLimits.maxDownstreamConnections`: the refusal.
enum DownstreamAdmission {
    /// Refuses a connection over the cap: outbound it is answered `503` `overload` and closed, inbound (which may
    /// speak TLS or opaque TCP) just closed. Counted in `weft_proxy_overload_total{direction, limit="connections"}`.
    static func refuse(_ channel: any Channel, _ shared: ProxyListenerContext) -> EventLoopFuture<Void> {
        shared.metrics.recordOverload(shared.direction, limit: .connections)
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(
                OverloadRefusalHandler(answers: shared.direction == .outbound))
        }
    }
}

/// The only handler of a refused connection: once it is active, writes the fixed `503` (when `answers`), ends its
/// side of the connection and closes when the client does, at most 1 s later (closing at once, with the client's
/// request unread, would reset the connection and could lose the answer). What arrives is discarded unparsed.
final class OverloadRefusalHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private static let response =
        "HTTP/1.1 503 Service Unavailable\r\nx-weft-reason: overload\r\ncontent-type: text/plain; charset=utf-8\r\n"
        + "content-length: 9\r\nconnection: close\r\n\r\noverload\n"

    private let answers: Bool

    init(answers: Bool) {
        self.answers = answers
    }

    func channelActive(context: ChannelHandlerContext) {
        guard self.answers else {
            context.close(promise: nil)
            return
        }
        context.writeAndFlush(self.wrapOutboundOut(context.channel.allocator.buffer(string: Self.response)))
            .assumeIsolated().whenComplete { _ in
                context.close(mode: .output, promise: nil)
            }
        context.eventLoop.assumeIsolated().scheduleTask(in: .seconds(1)) {
            context.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Discarded: the connection is closing.
    }
}

@available(*, unavailable)
extension OverloadRefusalHandler: Sendable {}
