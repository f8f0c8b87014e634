import NIOCore
import NIOHTTP1

/// Turns an HTTP/1.1 channel (server or client side) into a byte tunnel ending in `tunnel`: the encoder
/// leaves first (nothing may encode the tunnel's bytes), the tunnel goes in right after the decoder (which hands
/// it the bytes it still holds as it leaves), then every other HTTP handler leaves.
func installTunnel(_ tunnel: TunnelHandler, on channel: any Channel) throws {
    let pipeline = channel.pipeline.syncOperations
    func remove<Handler: ChannelHandler>(_ type: Handler.Type) {
        if let context = try? pipeline.context(handlerType: type) {
            pipeline.removeHandler(context: context, promise: nil)
        }
    }
    remove(HTTPResponseEncoder.self)
    remove(HTTPRequestEncoder.self)
    remove(NIOHTTPRequestHeadersValidator.self)
    if let decoder = try? pipeline.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self) {
        try pipeline.addHandler(tunnel, position: .after(decoder))
        pipeline.removeHandler(decoder, promise: nil)
    } else if let decoder = try? pipeline.handler(type: ByteToMessageHandler<HTTPResponseDecoder>.self) {
        try pipeline.addHandler(tunnel, position: .after(decoder))
        pipeline.removeHandler(decoder, promise: nil)
    } else {
        try pipeline.addHandler(tunnel, position: .first)
    }
    remove(HTTPServerPipelineHandler.self)
    remove(ProxyServerHandler.self)
    remove(UpstreamHandler.self)
}
