import KubeModel
import NIOCore
import NIOHTTP1

/// One HTTP/1.1 connection of `FakeAPIServer`: reads a request (body at most 3 MiB, as the real server),
/// answers it from the store, or streams a watch until it ends, times out, is cut, or the client goes away.
final class FakeAPIServerHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// The API server's `MaxRequestBodyBytes`.
    static let maxBodyBytes = 3 << 20

    private struct Watch {
        var id: Int
        var keepAlive: Bool
        var bookmarkTimer: Scheduled<Void>?
        var timeoutTimer: Scheduled<Void>?

        func cancelTimers() {
            self.bookmarkTimer?.cancel()
            self.timeoutTimer?.cancel()
        }
    }

    private enum State {
        case idle
        case receiving(head: HTTPRequestHead, body: ByteBuffer, tooLarge: Bool)
        case watching(Watch)
        case closed
    }

    private let core: FakeAPIServerCore
    private var state: State = .idle
    private var context: ChannelHandlerContext?

    init(core: FakeAPIServerCore) {
        self.core = core
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.endWatch()
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.endWatch()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.endWatch()
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            guard case .idle = self.state else { return }
            self.state = .receiving(head: head, body: context.channel.allocator.buffer(capacity: 0), tooLarge: false)
        case .body(var chunk):
            guard case .receiving(let head, var body, let tooLarge) = self.state else { return }
            self.state = .idle  // drops the state's reference to `body`, so appending does not copy it
            if tooLarge || body.readableBytes + chunk.readableBytes > Self.maxBodyBytes {
                self.state = .receiving(head: head, body: body, tooLarge: true)
            } else {
                body.writeBuffer(&chunk)
                self.state = .receiving(head: head, body: body, tooLarge: false)
            }
        case .end:
            guard case .receiving(let head, let body, let tooLarge) = self.state else { return }
            self.state = .idle
            self.respond(context: context, head: head, body: body, tooLarge: tooLarge)
        }
    }

    // MARK: - Answers

    private func respond(context: ChannelHandlerContext, head: HTTPRequestHead, body: ByteBuffer, tooLarge: Bool) {
        if tooLarge {
            self.writeJSON(context: context, status: 413, body: FakeAPIError.requestTooLarge.status, keepAlive: false)
            return
        }
        if let proxied = FakeServiceProxyRequest(uri: head.uri) {
            self.relay(context: context, proxied, head: head)
            return
        }
        let uri = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        let request = FakeAPIServer.Request(
            method: head.method.rawValue, path: String(uri.first ?? ""),
            query: fakeAPIParseQuery(uri.count > 1 ? String(uri[1]) : ""),
            contentType: head.headers.first(name: "content-type"), body: String(buffer: body))
        switch self.core.handle(request) {
        case .json(let status, let json):
            self.writeJSON(context: context, status: status, body: json, keepAlive: head.isKeepAlive)
        case .watch(let watch):
            self.startWatch(context: context, request: watch, keepAlive: head.isKeepAlive)
        }
    }

    /// The service proxy: the Service's endpoint answers (status, content type and body relayed as they are);
    /// 503 when no endpoint was routed, 503 with the dial's error when it does not answer, 405 for writes here.
    private func relay(context: ChannelHandlerContext, _ proxied: FakeServiceProxyRequest, head: HTTPRequestHead) {
        let keepAlive = head.isKeepAlive
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        self.core.store.withLock {
            $0.record(
                FakeAPIServer.Request(method: head.method.rawValue, path: path, query: [:], contentType: nil, body: ""))
        }
        guard head.method == .GET else {
            self.writeJSON(
                context: context, status: 405, body: FakeAPIError.methodNotAllowed.status, keepAlive: keepAlive)
            return
        }
        let port = self.core.serviceProxies.withLock { $0["\(proxied.namespace)/\(proxied.service)"] }
        guard let port else {
            self.writeJSON(context: context, status: 503, body: proxied.noEndpoints.status, keepAlive: keepAlive)
            return
        }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        fakeProxyGet(port: port, uri: proxied.uri, on: context.eventLoop).whenComplete { result in
            let (handler, context) = loopBound.value
            switch result {
            case .success(let response):
                var headers = HTTPHeaders()
                if let type = response.contentType { headers.add(name: "Content-Type", value: type) }
                headers.add(name: "Content-Length", value: String(response.body.readableBytes))
                if !keepAlive { headers.add(name: "Connection", value: "close") }
                context.write(
                    handler.wrapOutboundOut(
                        .head(HTTPResponseHead(version: .http1_1, status: response.status, headers: headers))),
                    promise: nil)
                context.write(handler.wrapOutboundOut(.body(.byteBuffer(response.body))), promise: nil)
                let written = context.writeAndFlush(handler.wrapOutboundOut(.end(nil)))
                if !keepAlive {
                    let channel = context.channel
                    written.whenComplete { _ in channel.close(promise: nil) }
                }
            case .failure(let error):
                let failure = FakeAPIError(
                    code: 503, reason: "ServiceUnavailable",
                    message: "error trying to reach service: dial tcp 127.0.0.1:\(port): \(error)")
                handler.writeJSON(context: context, status: 503, body: failure.status, keepAlive: keepAlive)
            }
        }
    }

    private func writeJSON(context: ChannelHandlerContext, status: Int, body: JSONValue, keepAlive: Bool) {
        let bytes = FakeJSON.encode(body)
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(bytes.count))
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        let head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: status), headers: headers)
        context.write(self.wrapOutboundOut(.head(head)), promise: nil)
        context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: bytes)))), promise: nil)
        let written = context.writeAndFlush(self.wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let channel = context.channel
            written.whenComplete { _ in channel.close(promise: nil) }
        }
    }

    // MARK: - Watches

    private func startWatch(context: ChannelHandlerContext, request: FakeWatchRequest, keepAlive: Bool) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Transfer-Encoding", value: "chunked")
        headers.add(name: "Cache-Control", value: "no-cache, private")
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        // The head goes out only once the watch is registered, as the real server's: a client that has the head
        // can count on `cutWatches()` and every later write reaching this watch. The sink writes its lines in
        // later event-loop tasks, so they still follow the head.
        context.write(
            self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))),
            promise: nil)
        defer { context.flush() }
        let id = self.core.allocateWatchID()
        let sink = FakeWatchSink(
            id: id, eventLoop: context.eventLoop, handler: NIOLoopBound(self, eventLoop: context.eventLoop))
        var watch = Watch(id: id, keepAlive: keepAlive)
        self.state = .watching(watch)
        guard self.core.startWatch(request, sink: sink) else { return }  // expired: ERROR and the end are queued
        if request.bookmarks { watch.bookmarkTimer = self.scheduleBookmark(id, on: context.eventLoop) }
        if let seconds = request.timeoutSeconds, seconds > 0 {
            let core = self.core
            watch.timeoutTimer = context.eventLoop.assumeIsolated().scheduleTask(in: .seconds(seconds)) {
                core.finishWatch(id)
            }
        }
        self.state = .watching(watch)
    }

    private func scheduleBookmark(_ id: Int, on eventLoop: any EventLoop) -> Scheduled<Void> {
        eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(self.core.bookmarkInterval)) {
            guard case .watching(var watch) = self.state, watch.id == id else { return }
            self.core.sendBookmark(id)
            watch.bookmarkTimer = self.scheduleBookmark(id, on: eventLoop)
            self.state = .watching(watch)
        }
    }

    /// Writes one event line of the current watch; `written` runs once the line is out (or dropped).
    func writeWatchLine(_ line: ByteBuffer, watch id: Int, written: @escaping @Sendable () -> Void) {
        guard case .watching(let watch) = self.state, watch.id == id, let context = self.context else {
            written()
            return
        }
        context.writeAndFlush(self.wrapOutboundOut(.body(.byteBuffer(line)))).whenComplete { _ in written() }
    }

    /// Ends the current watch's response cleanly; the connection stays open for the next request.
    func finishWatch(_ id: Int) {
        guard case .watching(let watch) = self.state, watch.id == id, let context = self.context else { return }
        watch.cancelTimers()
        self.state = .idle
        let written = context.writeAndFlush(self.wrapOutboundOut(.end(nil)))
        if !watch.keepAlive {
            let channel = context.channel
            written.whenComplete { _ in channel.close(promise: nil) }
        }
    }

    /// Closes the connection in the middle of the current watch's response.
    func abortWatch(_ id: Int) {
        guard case .watching(let watch) = self.state, watch.id == id, let context = self.context else { return }
        watch.cancelTimers()
        self.state = .closed
        context.close(promise: nil)
    }

    /// Forgets the watch in progress, if any (the connection is going away).
    private func endWatch() {
        if case .watching(let watch) = self.state {
            watch.cancelTimers()
            self.core.dropWatch(watch.id)
        }
        self.state = .closed
    }
}

@available(*, unavailable)
extension FakeAPIServerHandler: Sendable {}
