import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A tiny upstream for tests, on 127.0.0.1 and an ephemeral port. By default it streams back what it got:
/// status 200, headers `x-echo-server` (its name), `x-echo-method`, `x-echo-path`, and `x-echo-h-<name>` for
/// each request header, and the request body as the response body. Special paths: `/status/<code>` answers
/// that status, `/sleep/<ms>` answers after that delay, `/hold` answers when the test calls `releaseHeld()`,
/// `/reset` closes the connection without answering, `/close` answers `bye` with `connection: close` and closes.
/// Started with `status`, it answers every request with that status and an empty body instead.
final class TestUpstream: Sendable {
    let name: String
    let channel: any Channel
    private let counter: RequestCounter

    var port: Int { self.channel.localAddress?.port ?? 0 }
    /// Request heads received so far.
    var requestsReceived: Int { self.counter.value.load(ordering: .relaxed) }
    /// Connections accepted so far.
    var connectionsAccepted: Int { self.counter.connections.load(ordering: .relaxed) }
    /// The `Host` of the last request.
    var lastHost: String? { self.counter.lastHost.withLock { $0 } }
    /// `/hold` requests read whole and not answered yet.
    var heldRequests: Int { self.counter.held.withLock { $0.count } }

    private init(name: String, channel: any Channel, counter: RequestCounter) {
        self.name = name
        self.channel = channel
        self.counter = counter
    }

    static func start(name: String, status: Int? = nil, delayMs: Int? = nil) async throws -> TestUpstream {
        let counter = RequestCounter()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(
                        EchoHandler(name: name, counter: counter, status: status, delayMs: delayMs))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return TestUpstream(name: name, channel: channel, counter: counter)
    }

    func stop() async {
        try? await self.channel.close()
    }

    /// Answers every held `/hold` request (200, empty body) on its connection's event loop.
    func releaseHeld() {
        for answer in self.counter.held.withLock({ held in
            defer { held = [] }; return held
        }) {
            answer()
        }
    }

    /// A port where connections are refused: 1 (tcpmux), which nothing serves. (A port bound and released
    /// is no good for this: a listener of a test running in parallel may get it next.)
    static let refusingPort = 1

    /// A port on 127.0.0.1 that nothing listens on (bound, then released) for a process to bind.
    static func unusedPort() async throws -> Int {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        let port = channel.localAddress?.port ?? 1
        try await channel.close()
        return port
    }
}

private final class RequestCounter: Sendable {
    let value = Atomic<Int>(0)
    let connections = Atomic<Int>(0)
    let lastHost = Mutex<String?>(nil)
    let held = Mutex<[@Sendable () -> Void]>([])
}

private final class EchoHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let name: String
    private let counter: RequestCounter
    private let fixedStatus: Int?
    private let delayMs: Int?
    private var head: HTTPRequestHead?
    private var streaming = false

    init(name: String, counter: RequestCounter, status: Int?, delayMs: Int?) {
        self.name = name
        self.counter = counter
        self.fixedStatus = status
        self.delayMs = delayMs
    }

    func channelActive(context: ChannelHandlerContext) {
        self.counter.connections.add(1, ordering: .relaxed)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            self.counter.lastHost.withLock { $0 = head.headers.first(name: "host") }
            self.counter.value.add(1, ordering: .relaxed)
            if self.fixedStatus != nil || self.delayMs != nil {
                self.streaming = false
                return
            }
            if head.uri.hasPrefix("/reset") {
                context.close(promise: nil)
                return
            }
            if head.uri.hasPrefix("/close") {
                // A complete response, then the connection closes (not reusable).
                var response = self.responseHead(head, status: .ok)
                response.headers.add(name: "content-length", value: "3")
                response.headers.add(name: "connection", value: "close")
                context.write(self.wrapOutboundOut(.head(response)), promise: nil)
                context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: "bye")))), promise: nil)
                context.writeAndFlush(self.wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                    context.close(promise: nil)
                }
                return
            }
            self.streaming = !["/status/", "/sleep/", "/hold"].contains { head.uri.hasPrefix($0) }
            if self.streaming {
                context.writeAndFlush(self.wrapOutboundOut(.head(self.responseHead(head, status: .ok))), promise: nil)
            }
        case .body(let buffer):
            if self.streaming {
                context.writeAndFlush(self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            }
        case .end:
            guard let head = self.head else {
                return
            }
            if let delayMs = self.delayMs {
                let status = HTTPResponseStatus(statusCode: self.fixedStatus ?? 200)
                context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(Int64(delayMs))) {
                    guard context.channel.isActive else {
                        return
                    }
                    self.respondEmpty(context: context, head: head, status: status)
                }
            } else if let fixedStatus = self.fixedStatus {
                self.respondEmpty(context: context, head: head, status: HTTPResponseStatus(statusCode: fixedStatus))
            } else if self.streaming {
                context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
            } else if head.uri.hasPrefix("/hold") {
                let loop = context.eventLoop
                let bound = NIOLoopBound((self, context), eventLoop: loop)
                self.counter.held.withLock {
                    $0.append {
                        loop.execute {
                            let (handler, context) = bound.value
                            if context.channel.isActive {
                                handler.respondEmpty(context: context, head: head, status: .ok)
                            }
                        }
                    }
                }
            } else if head.uri.hasPrefix("/status/") {
                let code = Int(head.uri.dropFirst("/status/".count)) ?? 500
                self.respondEmpty(context: context, head: head, status: HTTPResponseStatus(statusCode: code))
            } else {
                let milliseconds = Int64(head.uri.dropFirst("/sleep/".count)) ?? 0
                context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(milliseconds)) {
                    // The proxy may have given up (timeout) and closed the connection meanwhile.
                    guard context.channel.isActive else {
                        return
                    }
                    self.respondEmpty(context: context, head: head, status: .ok)
                }
            }
        }
    }

    private func responseHead(_ head: HTTPRequestHead, status: HTTPResponseStatus) -> HTTPResponseHead {
        var headers = HTTPHeaders()
        headers.add(name: "x-echo-server", value: self.name)
        headers.add(name: "x-echo-method", value: head.method.rawValue)
        headers.add(name: "x-echo-path", value: head.uri)
        for field in head.headers {
            headers.add(name: "x-echo-h-\(field.name.lowercased())", value: field.value)
        }
        return HTTPResponseHead(version: head.version, status: status, headers: headers)
    }

    private func respondEmpty(context: ChannelHandlerContext, head: HTTPRequestHead, status: HTTPResponseStatus) {
        var response = self.responseHead(head, status: status)
        response.headers.add(name: "content-length", value: "0")
        context.write(self.wrapOutboundOut(.head(response)), promise: nil)
        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
    }
}

@available(*, unavailable)
extension EchoHandler: Sendable {}

/// Sends raw bytes to 127.0.0.1:`port` and returns everything read until the server closes; fails after 60 s (a
/// hang guard only: with every suite running at once on two cores, a healthy exchange once took over 5 s).
func rawExchange(host: String = "127.0.0.1", port: Int, _ request: String) async throws -> String {
    let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .connect(host: host, port: port) { channel in
            channel.eventLoop.makeCompletedFuture {
                try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
            }
        }
    return try await withThrowingTaskGroup(of: String.self) { group in
        group.addTask {
            try await channel.executeThenClose { inbound, outbound in
                // The proxy may answer (and close) before all of a bad request is written: read what came.
                try? await outbound.write(ByteBuffer(string: request))
                var received = ""
                for try await buffer in inbound {
                    received += String(buffer: buffer)
                }
                return received
            }
        }
        group.addTask {
            try await Task.sleep(for: .seconds(60))
            throw CancellationError()
        }
        defer { group.cancelAll() }
        return try await group.next() ?? ""
    }
}
