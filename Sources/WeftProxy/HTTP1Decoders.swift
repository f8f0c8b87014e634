import NIOCore
import NIOHTTP1

/// The read side of both HTTP/1.1 legs: `HTTP1Parser` over a connection's reads, with what NIO's
/// `ByteToMessageHandler` did around its decoders:
/// - every part the bytes read so far complete goes on at once (pipelined messages included);
/// - a refused message is reported once, and nothing after it is parsed;
/// - a connection that closes ends a response that runs until then, or reports `invalidEOFState` in the middle of
///   a message;
/// - after a tunnel's request or response the bytes that follow stay here until the handler leaves the pipeline,
///   which hands them on (`leftovers`).
/// A class, so that a part's handling may deliver another read while the loop runs (its bytes join the rest).
final class HTTP1Reader {
    private static let noBytes = ByteBufferAllocator().buffer(capacity: 0)
    private var parser: HTTP1Parser
    /// Read bytes not yet parsed (nil when there are none).
    private var buffer: ByteBuffer?
    private var failed = false
    private var parsing = false
    private var removed = false

    init(role: HTTP1Parser.Role, limits: NIOHTTPDecoderLimitConfiguration) {
        self.parser = HTTP1Parser(role: role, limits: .init(limits))
    }

    /// Between two messages with no byte of the next one held.
    var isIdle: Bool { self.parser.isIdle && self.buffer == nil && !self.failed }

    func requestSent(_ method: HTTPMethod) {
        self.parser.requestSent(method)
    }

    /// Adds `bytes` and hands each part they complete to `emit`; the error that stopped the parsing, if one did.
    func read(_ bytes: ByteBuffer, _ emit: (HTTP1Parser.Part) -> Void) -> (any Error)? {
        guard !self.failed else {
            return nil
        }
        if var held = self.buffer {
            self.buffer = nil
            var bytes = bytes
            held.writeBuffer(&bytes)
            self.buffer = held
        } else {
            self.buffer = bytes
        }
        guard !self.parsing else {
            // Read while a part was handled: the loop below goes on with these bytes.
            return nil
        }
        self.parsing = true
        defer { self.parsing = false }
        while !self.failed, !self.removed {
            // Held apart while parsing, so the parser's slices and moves do not copy the storage.
            var buffer: ByteBuffer
            if let held = self.buffer {
                buffer = held
                self.buffer = nil
            } else if self.parser.endsNext {
                // The last bytes completed a message: its end goes on without any.
                buffer = Self.noBytes
            } else {
                return nil
            }
            let part: HTTP1Parser.Part?
            do {
                part = try self.parser.next(&buffer)
            } catch {
                self.failed = true
                return error
            }
            if buffer.readableBytes > 0 {
                self.buffer = buffer
            }
            guard let part else {
                return nil
            }
            emit(part)
        }
        return nil
    }

    /// The connection closed: the end of a response that ran until now, or the error of a message cut short.
    /// Nothing when a part's handling closed it (the parts behind it are not wanted).
    func closed(_ emit: (HTTP1Parser.Part) -> Void) -> (any Error)? {
        guard !self.failed, !self.parsing else {
            self.failed = true
            self.buffer = nil
            return nil
        }
        self.failed = true
        do {
            let buffered = self.buffer?.readableBytes ?? 0
            self.buffer = nil
            if let part = try self.parser.finish(buffered: buffered) {
                emit(part)
            }
            return nil
        } catch {
            return error
        }
    }

    /// Leaving the pipeline on purpose: the bytes after a tunnel's request or response, for the tunnel.
    func leftovers() -> ByteBuffer? {
        self.removed = true
        guard self.parser.isStopped, let buffer = self.buffer, buffer.readableBytes > 0 else {
            return nil
        }
        self.buffer = nil
        return buffer
    }
}

@available(*, unavailable)
extension HTTP1Reader: Sendable {}

/// A handler that reads HTTP/1.1 through an `HTTP1Reader`, passing on the parts `emit` makes of the parser's.
protocol HTTP1Reading: ChannelInboundHandler where InboundIn == ByteBuffer {
    var reader: HTTP1Reader { get }
    static func emit(_ part: HTTP1Parser.Part, context: ChannelHandlerContext)
}

extension HTTP1Reading {
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if let error = self.reader.read(self.unwrapInboundIn(data), { Self.emit($0, context: context) }) {
            context.fireErrorCaught(error)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let error = self.reader.closed({ Self.emit($0, context: context) }) {
            context.fireErrorCaught(error)
        }
        context.fireChannelInactive()
    }
}

extension HTTP1Reading where Self: RemovableChannelHandler {
    /// Removed from a live pipeline (a tunnel takes over): the bytes held go to the handler behind, as
    /// `ByteToMessageHandler` hands them on. Not in `handlerRemoved`, which also runs when a closed channel's pipeline
    /// is torn down, to a request handler that could not take raw bytes.
    func removeHandler(context: ChannelHandlerContext, removalToken: ChannelHandlerContext.RemovalToken) {
        if let leftovers = self.reader.leftovers() {
            context.fireChannelRead(NIOAny(leftovers))
        }
        context.leavePipeline(removalToken: removalToken)
    }
}

/// The downstream HTTP/1.1 decoder, in place of NIO's `ByteToMessageHandler(HTTPRequestDecoder)`: request parts,
/// `HTTPParserError`s, and the bytes behind a CONNECT or upgrade request when it leaves (see `HTTP1Reader`).
final class HTTP1RequestDecoder: HTTP1Reading, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = HTTPServerRequestPart

    let reader: HTTP1Reader

    init(limits: NIOHTTPDecoderLimitConfiguration) {
        self.reader = HTTP1Reader(role: .request, limits: limits)
    }

    /// Between two requests with no byte of the next one held.
    var isIdle: Bool { self.reader.isIdle }

    static func emit(_ part: HTTP1Parser.Part, context: ChannelHandlerContext) {
        let request: HTTPServerRequestPart
        switch part {
        case .request(let head): request = .head(head)
        case .body(let buffer): request = .body(buffer)
        case .end(let trailers): request = .end(trailers)
        case .response: return
        }
        context.fireChannelRead(NIOAny(request))
    }
}

@available(*, unavailable)
extension HTTP1RequestDecoder: Sendable {}

/// The upstream HTTP/1.1 codec, in place of an encoder with NIO's `ByteToMessageHandler(HTTPResponseDecoder)`
/// behind it: request parts out as bytes (`HTTP1RequestEncoder.write`, each head's method noted for the response
/// that answers it), response parts in (see `HTTP1Reader`), one handler for both.
final class HTTP1ClientCodec: ChannelDuplexHandler, HTTP1Reading, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = IOData

    let reader: HTTP1Reader
    private var isChunked = false

    init(limits: NIOHTTPDecoderLimitConfiguration) {
        self.reader = HTTP1Reader(role: .response, limits: limits)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let part = self.unwrapOutboundIn(data)
        let written = HTTP1RequestEncoder.write(part, chunked: &self.isChunked, context: context, promise: promise)
        if written, case .head(let head) = part {
            self.reader.requestSent(head.method)
        }
    }

    static func emit(_ part: HTTP1Parser.Part, context: ChannelHandlerContext) {
        let response: HTTPClientResponsePart
        switch part {
        case .response(let head): response = .head(head)
        case .body(let buffer): response = .body(buffer)
        case .end(let trailers): response = .end(trailers)
        case .request: return
        }
        context.fireChannelRead(NIOAny(response))
    }
}

@available(*, unavailable)
extension HTTP1ClientCodec: Sendable {}
