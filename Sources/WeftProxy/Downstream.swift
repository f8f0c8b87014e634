import NIOCore
import NIOHTTP1

/// Where a `ProxyServerHandler` reads its requests from and writes its answers to: the pipeline of a downstream
/// HTTP/1.1 connection (the handler's own context), or one stream of a downstream HTTP/2 connection, which
/// `HTTP2ServerConnection` runs without a channel of its own.
enum Downstream {
    case connection(ChannelHandlerContext)
    case stream(HTTP2ServerStream)

    var eventLoop: any EventLoop {
        switch self {
        case .connection(let context): context.eventLoop
        case .stream(let stream): stream.eventLoop
        }
    }

    var remoteAddress: SocketAddress? {
        switch self {
        case .connection(let context): context.channel.remoteAddress
        case .stream(let stream): stream.remoteAddress
        }
    }

    var allocator: ByteBufferAllocator {
        switch self {
        case .connection(let context): context.channel.allocator
        case .stream(let stream): stream.allocator
        }
    }

    /// Whether a write now goes out without piling up (the socket's, and an HTTP/2 stream's flow-control window).
    var isWritable: Bool {
        switch self {
        case .connection(let context): context.channel.isWritable
        case .stream(let stream): stream.isWritable
        }
    }

    /// The HTTP/1.1 connection's channel (what a tunnel takes over); nil for an HTTP/2 stream.
    var channel: (any Channel)? {
        switch self {
        case .connection(let context): context.channel
        case .stream: nil
        }
    }

    func write(_ part: HTTPServerResponsePart) {
        switch self {
        case .connection(let context): context.write(NIOAny(part), promise: nil)
        case .stream(let stream): stream.write(part)
        }
    }

    func writeAndFlush(_ part: HTTPServerResponsePart) {
        switch self {
        case .connection(let context): context.writeAndFlush(NIOAny(part), promise: nil)
        case .stream(let stream):
            stream.write(part)
            stream.flush()
        }
    }

    func flush() {
        switch self {
        case .connection(let context): context.flush()
        case .stream(let stream): stream.flush()
        }
    }

    /// Asks for more of the request (a read the handler held back).
    func read() {
        switch self {
        case .connection(let context): context.read()
        case .stream(let stream): stream.resumeReads()
        }
    }

    /// Writes the answer's end, then closes the connection (lingering, `lingeringClose`) or resets the stream.
    func closeAfter(_ end: HTTPServerResponsePart) {
        switch self {
        case .connection(let context):
            context.writeAndFlush(NIOAny(end)).assumeIsolated().whenComplete { _ in
                Self.lingeringClose(context)
            }
        case .stream(let stream):
            stream.write(end)
            stream.flush()
            stream.reset(.cancel)
        }
    }

    /// How long a closing connection keeps reading after its answer before it closes (see `lingeringClose`).
    static let lingerTime = TimeAmount.seconds(2)

    /// Closes a connection after its last answer the way nginx's lingering close does: the write side first
    /// (the client reads the answer, then end of stream), then everything the client still sends is read and
    /// dropped until it closes, `lingerTime` passes or `ExchangeStateMachine.lingerBytes` arrive. Closing at
    /// once with unread bytes in the socket (the rest of a refused request, a pipelined one) makes the kernel send
    /// a reset, which can destroy the answer before the client reads it.
    private static func lingeringClose(_ context: ChannelHandlerContext) {
        guard context.channel.isActive else {
            return
        }
        context.close(mode: .output).assumeIsolated().whenFailure { _ in
            context.close(promise: nil)
        }
        context.eventLoop.assumeIsolated().scheduleTask(in: Self.lingerTime) {
            context.close(promise: nil)
        }
        context.read()
    }

    /// Closes the connection; resets the stream (`CANCEL`) unless it already ended both ways.
    func close() {
        switch self {
        case .connection(let context): context.close(promise: nil)
        case .stream(let stream): stream.reset(.cancel)
        }
    }
}
