import NIOCore
import NIOHTTP1
import NIOPosix

/// Turns an HTTP/1.1 channel (server or client side) into a byte tunnel ending in `tunnel`: the encoder
/// leaves first (nothing may encode the tunnel's bytes), the tunnel goes in right after the decoder (which hands
/// it the bytes it still holds as it leaves), then every other HTTP handler leaves.
///
/// The returned future completes once the decoder has gone, with the bytes it held (sent behind the upgrade or
/// CONNECT head) handed to `tunnel`. Join the tunnel only then: until it leaves, the upstream codec still takes
/// every outbound write for an HTTP request part and would trap on the tunnel's raw bytes.
func installTunnel(_ tunnel: TunnelHandler, on channel: any Channel) throws -> EventLoopFuture<Void> {
    let pipeline = channel.pipeline.syncOperations
    func remove<Handler: ChannelHandler>(_ type: Handler.Type) {
        if let context = try? pipeline.context(handlerType: type) {
            pipeline.removeHandler(context: context, promise: nil)
        }
    }
    remove(HTTP1ResponseEncoder.self)
    let decoderGone = channel.eventLoop.makePromise(of: Void.self)
    if let decoder = try? pipeline.handler(type: HTTP1RequestDecoder.self) {
        try pipeline.addHandler(tunnel, position: .after(decoder))
        pipeline.removeHandler(decoder, promise: decoderGone)
    } else if let decoder = try? pipeline.handler(type: HTTP1ClientCodec.self) {
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

/// An accepted upgrade (its `101` already written downstream): both HTTP/1.1 connections become one byte tunnel.
func joinUpgradeTunnel(
    downstream: any Channel, upstream: any Channel, metrics: ProxyMetrics, direction: ProxyDirection
) {
    let downstreamSide = TunnelHandler { metrics.recordTunnelBytes(direction, received: $0) }
    let upstreamSide = TunnelHandler { metrics.recordTunnelBytes(direction, sent: $0) }
    do {
        let downstreamReady = try installTunnel(downstreamSide, on: downstream)
        let upstreamReady = try installTunnel(upstreamSide, on: upstream)
        TunnelHandler.join(
            downstreamSide, upstreamSide, when: downstreamReady.and(upstreamReady).map { _ in },
            on: downstream.eventLoop)
        downstream.read()
        upstream.read()
    } catch {
        upstream.close(promise: nil)
        downstream.close(promise: nil)
    }
}

/// CONNECT's upstream leg: a TCP connection to `target` ending in a `TunnelHandler`, on `loop`.
func dialTunnel(
    _ target: UpstreamTarget, on loop: any EventLoop, metrics: ProxyMetrics, direction: ProxyDirection
) -> EventLoopFuture<TunnelHandler> {
    ClientBootstrap(group: loop)
        .channelOption(.tcpOption(.tcp_nodelay), value: 1)
        .connectTimeout(target.connectTimeout)
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(
                    TunnelHandler { metrics.recordTunnelBytes(direction, sent: $0) })
            }
        }
        .connect(host: target.host, port: target.port)
        .flatMapThrowing { channel in
            do {
                return try channel.pipeline.syncOperations.handler(type: TunnelHandler.self)
            } catch {
                channel.close(promise: nil)
                throw error
            }
        }
}

/// CONNECT is up: answers `200 Connection Established` on the downstream HTTP/1.1 connection and joins it with
/// `upstream` as a byte tunnel.
func joinConnectTunnel(
    downstream: any Channel, upstream: TunnelHandler, metrics: ProxyMetrics, direction: ProxyDirection
) {
    metrics.recordTCPConnection(direction)
    let downstreamSide = TunnelHandler { metrics.recordTunnelBytes(direction, received: $0) }
    do {
        let ready = try installTunnel(downstreamSide, on: downstream)
        downstreamSide.writeRaw(downstream.allocator.buffer(string: "HTTP/1.1 200 Connection Established\r\n\r\n"))
        TunnelHandler.join(downstreamSide, upstream, when: ready, on: downstream.eventLoop)
        // The server handler may have held a read back (the CONNECT had no end): read again, into the tunnel.
        downstream.read()
    } catch {
        upstream.close()
        downstream.close(promise: nil)
    }
}
