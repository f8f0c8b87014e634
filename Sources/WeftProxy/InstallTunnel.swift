import NIOCore
import NIOHTTP1

/// Turns an HTTP/1.1 channel (server or client side) into a byte tunnel ending in `tunnel`: the encoder
/// leaves first (nothing may encode the tunnel's bytes), the tunnel goes in right after the decoder (which hands
/// it the bytes it still holds as it leaves), then every other HTTP handler leaves.
///
/// The decoder leaves later in the event loop's tick (a `ByteToMessageHandler` removes itself
/// asynchronously): the returned future completes once it has gone, with the bytes it held (sent behind the
/// upgrade or CONNECT head) handed to `tunnel`. Join the tunnel only then: until it leaves, a response decoder
/// still watches every outbound write as an HTTP request part and would trap on the tunnel's raw bytes.
func installTunnel(_ tunnel: TunnelHandler, on channel: any Channel) throws -> EventLoopFuture<Void> {
    let pipeline = channel.pipeline.syncOperations
    func remove<Handler: ChannelHandler>(_ type: Handler.Type) {
        if let context = try? pipeline.context(handlerType: type) {
            pipeline.removeHandler(context: context, promise: nil)
        }
    }
    remove(HTTPResponseEncoder.self)
    remove(HTTPRequestEncoder.self)
    remove(NIOHTTPRequestHeadersValidator.self)
    let decoderGone = channel.eventLoop.makePromise(of: Void.self)
    if let decoder = try? pipeline.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self) {
        try pipeline.addHandler(tunnel, position: .after(decoder))
        pipeline.removeHandler(decoder, promise: decoderGone)
    } else if let decoder = try? pipeline.handler(type: ByteToMessageHandler<HTTPResponseDecoder>.self) {
        try pipeline.addHandler(tunnel, position: .after(decoder))
        pipeline.removeHandler(decoder, promise: decoderGone)
    } else {
        try pipeline.addHandler(tunnel, position: .first)
        decoderGone.succeed()
    }
    remove(ProxyServerHandler.self)
    remove(UpstreamHandler.self)
    return decoderGone.futureResult
}
