import NIOCore
import NIOHTTP2

/// A stream run by an HTTP/2 connection handler without a channel of its own (`HTTP2ServerStream`,
/// `HTTP2ClientStream`): it takes parts during a connection's read and gets one read-complete at its end.
protocol HTTP2ReadingStream: AnyObject {
    /// In the connection's list of streams that read in this read.
    var inReaders: Bool { get set }
    func readComplete()
    /// The connection became writable or stopped being so.
    func connectionWritabilityChanged()
}

/// What `HTTP2ServerConnection` and `HTTP2ClientConnection` share: the connection's context, its open streams and
/// the writes they make through it, the streams that read in the current read (each gets its read-complete with the
/// connection's, or at once for parts delivered outside a read), and the connection's inbound window
/// (`ConnectionInboundWindow`: reopened for what the streams' handlers took, not for what waits in held streams).
///
/// A class, not a struct stored in the handlers: its methods are re-entered from the writes and read-completes they
/// cause, which a struct's mutating access would not allow.
final class HTTP2ConnectionCore<Stream: HTTP2ReadingStream> {
    var context: ChannelHandlerContext?
    /// The open streams, by id.
    var streams: [HTTP2StreamID: Stream] = [:]
    private var readers: [Stream] = []
    private var reading = false
    private var window: ConnectionInboundWindow

    init(connectionWindow: Int) {
        self.window = ConnectionInboundWindow(target: connectionWindow)
    }

    // MARK: Reads

    /// The connection read a frame: streams that read now complete with the connection's read.
    func frameRead() {
        self.reading = true
    }

    /// `stream` took parts: it gets its read-complete at the end of this read (at once outside a read: a held read
    /// resumed).
    func streamRead(_ stream: Stream) {
        guard !stream.inReaders else {
            return
        }
        stream.inReaders = true
        self.readers.append(stream)
        if !self.reading {
            self.completeReads()
        }
    }

    /// The connection's read is complete: so is every stream's that read in it.
    func readComplete() {
        self.reading = false
        self.completeReads()
    }

    private func completeReads() {
        while let stream = self.readers.popLast() {
            stream.inReaders = false
            stream.readComplete()
        }
    }

    /// The streams are gone with the connection: no read-complete is owed.
    /// The connection is gone: its streams, which the caller closes, leave it, and no read-complete is due.
    func takeAllStreams() -> [HTTP2StreamID: Stream].Values {
        let streams = self.streams
        self.streams = [:]
        self.readers.removeAll()
        return streams.values
    }

    /// Every stream hears that the connection's writability changed.
    func writabilityChanged() {
        for stream in self.streams.values {
            stream.connectionWritabilityChanged()
        }
    }

    // MARK: The connection's inbound window

    /// `NIOHTTP2Handler` reported a window: the connection's is reopened if enough of it was taken.
    func windowUpdated(_ event: NIOHTTP2WindowUpdatedEvent) {
        if event.streamID == .rootStream, let size = event.inboundWindowSize {
            self.sendWindowUpdate(self.window.sized(size))
        }
    }

    /// A stream holds `bytes` of DATA its handler did not take yet.
    func parked(_ bytes: Int) {
        self.window.parked(bytes)
    }

    /// Parked bytes went to their handler, or were dropped with their stream.
    func released(_ bytes: Int) {
        self.sendWindowUpdate(self.window.released(bytes))
    }

    private func sendWindowUpdate(_ increment: Int?) {
        guard let increment else {
            return
        }
        self.writeAndFlush(HTTP2Frame(streamID: .rootStream, payload: .windowUpdate(windowSizeIncrement: increment)))
    }

    // MARK: Writes

    var isActive: Bool { self.context?.channel.isActive ?? false }
    var isWritable: Bool { self.context?.channel.isWritable ?? false }
    var remoteAddress: SocketAddress? { self.context?.channel.remoteAddress }

    func write(_ frame: HTTP2Frame, promise: EventLoopPromise<Void>?) {
        guard let context = self.context else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        context.write(NIOAny(frame), promise: promise)
    }

    func writeAndFlush(_ frame: HTTP2Frame) {
        self.context?.writeAndFlush(NIOAny(frame), promise: nil)
    }

    func flush() {
        self.context?.flush()
    }

    func makePromise() -> EventLoopPromise<Void>? {
        self.context?.eventLoop.makePromise()
    }
}

@available(*, unavailable)
extension HTTP2ConnectionCore: Sendable {}
