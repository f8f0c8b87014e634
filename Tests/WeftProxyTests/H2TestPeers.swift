import NIOCore
import NIOHTTP2
import NIOPosix
import Synchronization

// MARK: - Client

/// One h2c request, written as raw frames so that a test decides exactly what goes on the wire: no
/// `content-length` unless a header says so, END_STREAM on HEADERS when `data` is empty.
struct H2Request: Sendable {
    var method = "GET"
    var path: String
    var authority: String
    var headers: [(String, String)] = []
    /// DATA frames after HEADERS (END_STREAM on the last).
    var data: [String] = []
    /// The stream stays open after the DATA frames (no END_STREAM): a body that stalls.
    var stallsBody = false
    /// The whole header block as sent, pseudo-headers included, instead of the fields above (with
    /// `h2Exchange(validating: false)`: for header blocks RFC 9113 forbids).
    var rawFields: [(String, String)]? = nil
}

struct H2Response: Sendable {
    var status: Int
    var headers: [(String, String)]
    var body: String
    /// The DATA frames as they came: their sizes and END_STREAM flags.
    var dataFrames: [H2DataFrame] = []

    func header(_ name: String) -> String? { self.headers.first { $0.0 == name }?.1 }
}

struct H2DataFrame: Sendable, Equatable, CustomStringConvertible {
    var bytes: Int
    var endStream: Bool

    var description: String { "DATA(\(self.bytes)\(self.endStream ? ", END_STREAM" : ""))" }
}

/// Sends `requests` one after the other, each on a new stream of one h2c (prior knowledge) connection to
/// 127.0.0.1:`port`, and returns their responses (status 0: the stream was reset).
/// With `validating: false` the client sends header blocks as given, valid or not.
func h2Exchange(port: Int, validating: Bool = true, _ requests: [H2Request]) async throws -> [H2Response] {
    var connection = NIOHTTP2Handler.ConnectionConfiguration()
    if !validating {
        connection.headerBlockValidation = .disabled
        connection.contentLengthValidation = .disabled
    }
    let configuration = connection
    let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                    mode: .client, connectionConfiguration: configuration, streamConfiguration: .init()
                ) { stream in
                    stream.close()
                }
            }
        }
        .connect(host: "127.0.0.1", port: port).get()
    var responses: [H2Response] = []
    do {
        for request in requests {
            let response = try await channel.eventLoop.flatSubmit { () -> EventLoopFuture<H2Response> in
                let promise = channel.eventLoop.makePromise(of: H2Response.self)
                do {
                    let multiplexer = try channel.pipeline.syncOperations.handler(type: NIOHTTP2Handler.self)
                        .syncMultiplexer()
                    multiplexer.createStreamChannel { stream in
                        stream.eventLoop.makeCompletedFuture {
                            try stream.pipeline.syncOperations.addHandler(H2ClientStreamHandler(request, promise))
                        }
                    }.whenFailure { promise.fail($0) }
                } catch {
                    promise.fail(error)
                }
                return promise.futureResult
            }.get()
            responses.append(response)
        }
    } catch {
        try? await channel.close()
        throw error
    }
    try? await channel.close()
    return responses
}

private final class H2ClientStreamHandler: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    private let request: H2Request
    private let promise: EventLoopPromise<H2Response>
    private var response = H2Response(status: 0, headers: [], body: "")
    private var done = false

    init(_ request: H2Request, _ promise: EventLoopPromise<H2Response>) {
        self.request = request
        self.promise = promise
    }

    func channelActive(context: ChannelHandlerContext) {
        let fields =
            self.request.rawFields ?? [
                (":method", self.request.method), (":path", self.request.path), (":scheme", "http"),
                (":authority", self.request.authority),
            ] + self.request.headers
        // (HPACKHeaders by inference: the test target does not import NIOHPACK.)
        context.write(
            self.wrapOutboundOut(
                .headers(
                    .init(headers: .init(fields), endStream: self.request.data.isEmpty && !self.request.stallsBody))),
            promise: nil)
        for (index, chunk) in self.request.data.enumerated() {
            let data = HTTP2Frame.FramePayload.Data(
                data: .byteBuffer(ByteBuffer(string: chunk)),
                endStream: index == self.request.data.count - 1 && !self.request.stallsBody)
            context.write(self.wrapOutboundOut(.data(data)), promise: nil)
        }
        context.flush()
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .headers(let headers):
            if let status = headers.headers.first(name: ":status").flatMap({ Int($0) }) {
                if status < 200 {
                    return
                }
                self.response.status = status
            }
            for field in headers.headers where !field.name.hasPrefix(":") {
                self.response.headers.append((field.name, field.value))
            }
            if headers.endStream {
                self.finish()
            }
        case .data(let data):
            if case .byteBuffer(let buffer) = data.data {
                self.response.body += String(buffer: buffer)
            }
            self.response.dataFrames.append(H2DataFrame(bytes: data.data.readableBytes, endStream: data.endStream))
            if data.endStream {
                self.finish()
            }
        case .rstStream:
            self.response.status = 0
            self.finish()
        default:
            break
        }
    }

    private func finish() {
        guard !self.done else {
            return
        }
        self.done = true
        self.promise.succeed(self.response)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.finish()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.response.status = 0
        self.finish()
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension H2ClientStreamHandler: Sendable {}

// MARK: - Upstream

/// An h2c upstream for tests (NIOHTTP2 server). It answers each request `200` with `x-h2-upstream: <name>` and
/// body `h2:<path>`, except:
/// - the first `refuseFirst` streams are reset with REFUSED_STREAM (never processed);
/// - `/hold`: it sends GOAWAY (last stream: this one), then the response head, and holds the body until
///   `release()`;
/// - `/echo`: answers at once and sends every DATA frame's bytes back as they come, ending with the request;
/// - `/endless`: sends up to `endlessLimit` bytes of body while its stream is writable (the proxy's window);
/// - `/deaf`: stops reading the stream after its head: the proxy's window for it is never reopened.
/// Every request's header block is kept (`lastRequest`).
final class H2Upstream: Sendable {
    let channel: any Channel
    fileprivate let state: Mutex<H2UpstreamState>

    var port: Int { self.channel.localAddress?.port ?? 0 }
    var streams: Int { self.state.withLock { $0.streams } }
    var refused: Int { self.state.withLock { $0.refused } }
    var connections: Int { self.state.withLock { $0.connections } }
    /// The header block of the last request, in order.
    var lastRequest: [(String, String)] { self.state.withLock { $0.lastRequest } }
    /// Whether each request's HEADERS frame ended its stream, in order.
    var headersEndedStream: [Bool] { self.state.withLock { $0.headersEndedStream } }
    var endlessSent: Int { self.state.withLock { $0.endlessSent } }
    static let endlessLimit = 256 << 20

    /// Waits until `/endless` is held back for good (25 looks in a row find its stream blocked with nothing more
    /// sent) or has sent everything; true when held back.
    func endlessHeldBack() async throws -> Bool {
        let sent = try await bytesOnceSettled(limit: Self.endlessLimit) {
            self.state.withLock { ($0.endlessSent, $0.endlessBlocked) }
        }
        return sent < Self.endlessLimit
    }

    private init(channel: any Channel, refuseFirst: Int) {
        self.channel = channel
        self.state = Mutex(H2UpstreamState(refuseFirst: refuseFirst))
    }

    static func start(name: String, refuseFirst: Int = 0) async throws -> H2Upstream {
        let box = H2UpstreamBox(refuseFirst: refuseFirst)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                box.upstream?.state.withLock { $0.connections += 1 }
                return channel.eventLoop.makeCompletedFuture {
                    _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                        mode: .server, connectionConfiguration: .init(), streamConfiguration: .init()
                    ) { stream in
                        stream.eventLoop.makeCompletedFuture {
                            try stream.pipeline.syncOperations.addHandler(
                                H2UpstreamStreamHandler(name: name, box: box))
                        }
                    }
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let upstream = H2Upstream(channel: channel, refuseFirst: refuseFirst)
        box.set(upstream)
        return upstream
    }

    /// Ends every held response (`/hold`) with body `released`.
    func release() {
        let held = self.state.withLock {
            let held = $0.held
            $0.held = []
            return held
        }
        for stream in held {
            let data = HTTP2Frame.FramePayload.Data(data: .byteBuffer(ByteBuffer(string: "released")), endStream: true)
            stream.writeAndFlush(HTTP2Frame.FramePayload.data(data), promise: nil)
        }
    }

    func stop() async {
        try? await self.channel.close()
    }
}

struct H2UpstreamState {
    var refuseFirst: Int
    var streams = 0
    var refused = 0
    var connections = 0
    var held: [any Channel] = []
    var lastRequest: [(String, String)] = []
    var headersEndedStream: [Bool] = []
    var endlessSent = 0
    var endlessBlocked = false
}

/// Lets the child initializer reach the upstream created after the bind.
private final class H2UpstreamBox: Sendable {
    private let value = Mutex<H2Upstream?>(nil)
    let refuseFirst: Int

    init(refuseFirst: Int) {
        self.refuseFirst = refuseFirst
    }

    var upstream: H2Upstream? { self.value.withLock { $0 } }

    func set(_ upstream: H2Upstream) {
        self.value.withLock { $0 = upstream }
    }
}

private final class H2UpstreamStreamHandler: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    private let name: String
    private let box: H2UpstreamBox
    private var path = ""

    init(name: String, box: H2UpstreamBox) {
        self.name = name
        self.box = box
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .headers(let headers):
            self.path = headers.headers.first(name: ":path") ?? ""
            let refuse =
                self.box.upstream?.state.withLock { state -> Bool in
                    state.lastRequest = headers.headers.map { ($0.name, $0.value) }
                    state.headersEndedStream.append(headers.endStream)
                    state.streams += 1
                    guard state.refused < state.refuseFirst else {
                        return false
                    }
                    state.refused += 1
                    return true
                } ?? false
            if refuse {
                context.writeAndFlush(self.wrapOutboundOut(.rstStream(.refusedStream)), promise: nil)
                return
            }
            switch self.path {
            case "/hold":
                self.hold(context: context)
                return
            case "/echo", "/endless":
                context.write(self.wrapOutboundOut(.headers(.init(headers: [":status": "200"]))), promise: nil)
                if headers.endStream, self.path == "/echo" {
                    context.write(
                        self.wrapOutboundOut(.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true))),
                        promise: nil)
                }
                context.flush()
                self.pump(context: context)
                return
            case "/deaf":
                context.channel.setOption(.autoRead, value: false).whenFailure { _ in }
                return
            default:
                break
            }
            if headers.endStream {
                self.respond(context: context)
            }
        case .data(let data):
            if self.path == "/echo" {
                if case .byteBuffer(let bytes) = data.data {
                    let echo = HTTP2Frame.FramePayload.Data(data: .byteBuffer(bytes), endStream: data.endStream)
                    context.writeAndFlush(self.wrapOutboundOut(.data(echo)), promise: nil)
                }
                return
            }
            if data.endStream, self.path != "/hold" {
                self.respond(context: context)
            }
        default:
            break
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.pump(context: context)
        context.fireChannelWritabilityChanged()
    }

    /// `/endless`: writes while the stream is writable, and records whether it is blocked.
    private func pump(context: ChannelHandlerContext) {
        guard self.path == "/endless", let upstream = self.box.upstream else {
            return
        }
        while context.channel.isWritable, upstream.endlessSent < H2Upstream.endlessLimit {
            let chunk = 16384
            let buffer = context.channel.allocator.buffer(repeating: 0x61, count: chunk)
            upstream.state.withLock { $0.endlessSent += chunk }
            context.write(self.wrapOutboundOut(.data(.init(data: .byteBuffer(buffer)))), promise: nil)
        }
        context.flush()
        let blocked = !context.channel.isWritable
        upstream.state.withLock { $0.endlessBlocked = blocked }
    }

    private func respond(context: ChannelHandlerContext) {
        context.write(
            self.wrapOutboundOut(.headers(.init(headers: .init([(":status", "200"), ("x-h2-upstream", self.name)])))),
            promise: nil)
        let body = HTTP2Frame.FramePayload.Data(
            data: .byteBuffer(ByteBuffer(string: "h2:\(self.path)")), endStream: true)
        context.writeAndFlush(self.wrapOutboundOut(.data(body)), promise: nil)
    }

    private func hold(context: ChannelHandlerContext) {
        if let parent = context.channel.parent,
            let streamID = try? context.channel.syncOptions?.getOption(HTTP2StreamChannelOptions.streamID)
        {
            // GOAWAY first: when the client sees this response's head, its proxy has seen the GOAWAY.
            parent.writeAndFlush(
                HTTP2Frame(
                    streamID: .rootStream,
                    payload: .goAway(lastStreamID: streamID, errorCode: .noError, opaqueData: nil)),
                promise: nil)
        }
        context.writeAndFlush(
            self.wrapOutboundOut(.headers(.init(headers: .init([(":status", "200"), ("x-h2-upstream", self.name)])))),
            promise: nil)
        let channel = context.channel
        self.box.upstream?.state.withLock { $0.held.append(channel) }
    }
}

@available(*, unavailable)
extension H2UpstreamStreamHandler: Sendable {}
