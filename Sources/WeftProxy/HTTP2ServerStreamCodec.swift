import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2

/// NIO's `HTTP2FramePayloadToHTTP1ServerCodec` for one downstream HTTP/2 stream, except that a response's last
/// body chunk and its end go out as one DATA frame with END_STREAM, as an HTTP/2 server sends them, instead of the
/// chunk and then an empty DATA frame: one frame per response fewer to build, encode and write (a third of a
/// small response's frames), and one fewer for the client to read.
///
/// The codec holds the newest body chunk until the next response part or the next flush, whichever comes first:
/// a streamed body (a gRPC server stream, server-sent events) is not delayed, since every flush sends what is
/// held. Request parts come through NIO's codec.
///
/// Response heads and trailers become header blocks here too, in one pass (NIO's codec copies a head into a new
/// `HTTPHeaders` with `:status` first, then into an `HPACKHeaders` with every name lowercased through Unicode
/// case mapping): names lowercased as ASCII (an HTTP/1.1 field name is a token) and connection-specific fields
/// dropped, as NIO's normalization does. The heads that reach this codec have no hop-by-hop fields already
/// (`DownstreamResponse`), so the fields a `Connection` field would name are gone with it.
///
/// It also checks the request's header blocks (head and trailers) against RFC 9113 (`HTTP2RequestBlock`), since
/// the downstream connection runs without NIOHTTP2's validation: a malformed block resets the stream with
/// PROTOCOL_ERROR, as NIOHTTP2 does, and nothing of the request reaches the proxy.
final class HTTP2ServerStreamCodec: ChannelInboundHandler, ChannelOutboundHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTP2Frame.FramePayload

    private let codec = HTTP2FramePayloadToHTTP1ServerCodec()
    /// The newest body chunk, not yet written, and the promise of its write.
    private var held: (data: IOData, promise: EventLoopPromise<Void>?)?
    /// The request's head arrived (a later HEADERS frame carries trailers).
    private var headSeen = false
    /// The stream was reset for a malformed block: what follows is dropped.
    private var reset = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.reset else {
            return
        }
        if case .headers(let headers) = self.unwrapInboundIn(data) {
            let isTrailers = self.headSeen
            self.headSeen = true
            if HTTP2RequestBlock.violation(in: headers.headers, isTrailers: isTrailers) != nil {
                self.reset = true
                context.writeAndFlush(self.wrapOutboundOut(.rstStream(.protocolError)), promise: nil)
                context.close(promise: nil)
                return
            }
        }
        self.codec.channelRead(context: context, data: data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch self.unwrapOutboundIn(data) {
        case .body(let body):
            self.writeHeld(context: context)
            self.held = (body, promise)
        case .end(nil):
            guard let held = self.held else {
                self.codec.write(context: context, data: data, promise: promise)
                return
            }
            self.held = nil
            let last = HTTP2Frame.FramePayload.data(.init(data: held.data, endStream: true))
            context.write(self.wrapOutboundOut(last), promise: Self.joined(held.promise, promise, on: context))
        case .head(let head):
            self.writeHeld(context: context)
            let block = Self.block(status: head.status, head.headers)
            context.write(self.wrapOutboundOut(.headers(.init(headers: block))), promise: promise)
        case .end(let trailers?):
            self.writeHeld(context: context)
            let block = Self.block(status: nil, trailers)
            context.write(self.wrapOutboundOut(.headers(.init(headers: block, endStream: true))), promise: promise)
        }
    }

    /// A response head's fields (with `:status` first) or trailers as an HTTP/2 header block.
    static func block(status: HTTPResponseStatus?, _ headers: HTTPHeaders) -> HPACKHeaders {
        var block = HPACKHeaders()
        block.reserveCapacity(headers.count + 1)
        if let status {
            block.add(name: ":status", value: String(status.code))
        }
        for (name, value) in headers where !HTTP1Head.withUTF8(name, HTTP2RequestBlock.isConnectionSpecific) {
            block.add(name: Self.lowercased(name), value: value)
        }
        return block
    }

    /// `name` with ASCII capitals made small (itself, not copied, when it has none).
    static func lowercased(_ name: String) -> String {
        HTTP1Head.withUTF8(name) { bytes in
            guard let first = bytes.firstIndex(where: { $0 &- 0x41 < 26 }) else {
                return name
            }
            return String(unsafeUninitializedCapacity: bytes.count) { out in
                for index in 0..<bytes.count {
                    let byte = bytes[index]
                    out[index] = index >= first && byte &- 0x41 < 26 ? byte | 0x20 : byte
                }
                return bytes.count
            }
        }
    }

    func flush(context: ChannelHandlerContext) {
        self.writeHeld(context: context)
        context.flush()
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        // What the proxy wrote before closing (an aborted response's last chunk) goes out as it did before.
        self.writeHeld(context: context)
        context.close(mode: mode, promise: promise)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        // The stream is gone: a chunk never written fails its write, as NIO fails writes to a closed stream.
        self.held?.promise?.fail(ChannelError.ioOnClosedChannel)
        self.held = nil
    }

    private func writeHeld(context: ChannelHandlerContext) {
        guard let held = self.held else {
            return
        }
        self.held = nil
        context.write(self.wrapOutboundOut(.data(.init(data: held.data))), promise: held.promise)
    }

    /// One promise for a write that stands for two: both complete with it (nil when neither wants to know).
    private static func joined(
        _ first: EventLoopPromise<Void>?, _ second: EventLoopPromise<Void>?, on context: ChannelHandlerContext
    ) -> EventLoopPromise<Void>? {
        switch (first, second) {
        case (nil, nil): return nil
        case (let one?, nil), (nil, let one?): return one
        case (let one?, let other?):
            one.futureResult.cascade(to: other)
            return one
        }
    }
}

@available(*, unavailable)
extension HTTP2ServerStreamCodec: Sendable {}
