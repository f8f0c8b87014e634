import NIOCore
import NIOHTTP1
import NIOPosix
import ProxyConfig

/// What every connection of a listener shares.
struct ProxyListenerContext: Sendable {
    let direction: ProxyDirection
    let store: ProxyStateStore
    let metrics: ProxyMetrics
    /// Per event loop balancer and outlier detection state.
    let runtimes: ClusterRuntimes
}

/// Proxies HTTP/1.1 requests of one downstream connection, one at a time (`HTTPServerPipelineHandler` holds
/// pipelined requests back): routes on the head, opens (or reuses) an upstream connection on the same event
/// loop, and forwards body parts both ways as they arrive, reading from a side only while the other can write.
///
/// Upstream connections: one per downstream connection, kept alive and reused while the next request goes to
/// the same endpoint; a request to another endpoint closes it and opens a new one.
final class ProxyServerHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private enum Phase {
        case idle
        /// Forwarding the request upstream (or waiting for its delay or connection).
        case forwarding
        /// The response is done (local or upstream); discarding the rest of the request body.
        case draining
    }

    private let shared: ProxyListenerContext
    private var context: ChannelHandlerContext?
    private var phase = Phase.idle
    /// Incremented per request; callbacks of an older request (timers, connects) are ignored.
    private var generation = 0
    private var keepAlive = true
    private var version = HTTPVersion.http1_1
    private var requestEnded = false
    private var responseHeadSent = false
    private var started = NIODeadline.now()
    private var status = 0
    private var reason = ProxyReason.upstream
    private var plan: ForwardPlan?
    /// The current request's hold on its endpoint (outbound), ended when the request is over.
    private var lease: EndpointLease?
    /// Balancer state for an event loop outside the listener's group (not expected; per connection then).
    private var connectionRuntime: ClusterRuntime?
    private var pending: [HTTPClientRequestPart] = []
    private var timer: Scheduled<Void>?
    private var delayTimer: Scheduled<Void>?
    private var upstream: UpstreamHandler?
    /// The current upstream has sent the request head (what `pending` waits for).
    private var upstreamReady = false
    /// The current upstream may take another request after this one.
    private var upstreamReusable = false
    private var readPending = false

    init(_ shared: ProxyListenerContext) {
        self.shared = shared
    }

    var isWritable: Bool { self.context?.channel.isWritable ?? false }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    // MARK: Downstream events

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.requestHead(head, context: context)
        case .body(let buffer):
            self.requestPart(.body(.byteBuffer(buffer)))
        case .end(let trailers):
            self.requestEnded = true
            switch self.phase {
            case .forwarding:
                self.requestPart(.end(trailers))
            case .draining:
                self.phase = .idle
            case .idle:
                break
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if self.upstreamReady {
            self.upstream?.flush()
        }
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.cancelTimers()
        self.endLease()
        self.generation += 1
        self.closeUpstream()
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.upstream?.resumeReads()
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if self.holdsReads {
            self.readPending = true
        } else {
            context.read()
        }
    }

    private var holdsReads: Bool {
        self.phase == .forwarding && !self.requestEnded
            && (!self.upstreamReady || !(self.upstream?.isWritable ?? false))
    }

    /// Reads from the downstream again if a read was held back and nothing holds it now.
    func resumeReads() {
        guard self.readPending, !self.holdsReads, let context = self.context else {
            return
        }
        self.readPending = false
        context.read()
    }

    // MARK: Request

    private func requestHead(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        self.generation += 1
        self.endLease()
        self.keepAlive = head.isKeepAlive
        self.version = head.version
        self.requestEnded = false
        self.responseHeadSent = false
        self.started = .now()
        self.status = 0
        self.reason = .upstream
        self.pending.removeAll(keepingCapacity: true)
        self.phase = .forwarding
        if head.method == .CONNECT {
            self.respond(status: 405, reason: .unsupportedMethod)
            return
        }
        guard let state = self.shared.store.current else {
            self.respond(status: 503, reason: .noConfig)
            return
        }
        let decision: ProxyDecision
        if self.shared.direction == .outbound {
            let runtime = self.runtime(for: state, on: context.eventLoop)
            decision = state.decideOutbound(head, runtime: runtime, remoteAddress: context.channel.remoteAddress)
        } else {
            decision = state.decideInbound(head)
        }
        switch decision {
        case .respond(let status, let reason, let location):
            self.respond(status: status, reason: reason, location: location)
        case .forward(let plan):
            self.plan = plan
            self.lease = plan.lease
            self.pending.append(.head(plan.head))
            let generation = self.generation
            let loop = context.eventLoop.assumeIsolated()
            if let timeout = plan.timeout {
                self.timer = loop.scheduleTask(in: timeout) { [self] in
                    self.timedOut(generation: generation)
                }
            }
            if let delay = plan.delay {
                self.delayTimer = loop.scheduleTask(in: delay) { [self] in
                    guard self.generation == generation, self.phase == .forwarding else {
                        return
                    }
                    self.connect(plan, context: context)
                }
            } else {
                self.connect(plan, context: context)
            }
        }
    }

    private func runtime(for state: ProxyState, on loop: any EventLoop) -> ClusterRuntime {
        if let runtime = self.shared.runtimes.runtime(for: state, on: loop) {
            return runtime
        }
        if let runtime = self.connectionRuntime, runtime.serves(state) {
            return runtime
        }
        let runtime = ClusterRuntime(state)
        self.connectionRuntime = runtime
        return runtime
    }

    /// Releases the current request's endpoint (least request counts it as finished).
    private func endLease() {
        guard let lease = self.lease else {
            return
        }
        self.lease = nil
        lease.end()
    }

    private func requestPart(_ part: HTTPClientRequestPart) {
        guard self.phase == .forwarding else {
            return
        }
        if self.upstreamReady, let upstream = self.upstream {
            upstream.send(part)
        } else {
            self.pending.append(part)
        }
    }

    // MARK: Upstream

    private func connect(_ plan: ForwardPlan, context: ChannelHandlerContext) {
        if let upstream = self.upstream {
            if upstream.key == plan.key, self.upstreamReusable, upstream.channel?.isActive ?? false {
                self.upstreamConnected(upstream)
                return
            }
            self.closeUpstream()
        }
        let generation = self.generation
        let key = plan.key
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        ClientBootstrap(group: context.eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(plan.connectTimeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(
                        UpstreamHandler(downstream: bound.value, key: key))
                }
            }
            .connect(host: plan.host, port: plan.port)
            .whenComplete { result in
                let handler = bound.value
                switch result {
                case .success(let channel):
                    guard handler.generation == generation, handler.phase == .forwarding,
                        let upstream = try? channel.pipeline.syncOperations.handler(type: UpstreamHandler.self)
                    else {
                        channel.close(promise: nil)
                        return
                    }
                    handler.upstreamConnected(upstream)
                case .failure:
                    guard handler.generation == generation, handler.phase == .forwarding else {
                        return
                    }
                    handler.lease?.record(.connectFailure)
                    handler.respond(status: 503, reason: .upstreamConnectFailure)
                }
            }
    }

    private func upstreamConnected(_ upstream: UpstreamHandler) {
        self.upstream = upstream
        self.upstreamReady = true
        self.upstreamReusable = false
        for part in self.pending {
            upstream.send(part)
        }
        self.pending.removeAll(keepingCapacity: true)
        upstream.flush()
        self.resumeReads()
    }

    func upstreamRead(_ part: HTTPClientResponsePart, from upstream: UpstreamHandler) {
        guard upstream === self.upstream, self.phase == .forwarding, let context = self.context else {
            return
        }
        switch part {
        case .head(let response):
            var headers = response.headers.withoutHopByHop()
            let upstreamKeepAlive = response.isKeepAlive
            for operations in self.plan?.responseHeaders ?? [] {
                headers.apply(operations)
            }
            if !self.keepAlive {
                headers.add(name: "connection", value: "close")
            } else if self.version == .http1_0 {
                headers.add(name: "connection", value: "keep-alive")
            }
            self.status = Int(response.status.code)
            self.lease?.record(.status(self.status))
            self.responseHeadSent = true
            self.upstreamReusable = upstreamKeepAlive
            context.write(
                self.wrapOutboundOut(
                    .head(HTTPResponseHead(version: self.version, status: response.status, headers: headers))),
                promise: nil)
        case .body(let buffer):
            context.write(self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        case .end(let trailers):
            if !self.requestEnded {
                // The upstream answered before the whole request was sent: it cannot take another one.
                self.upstreamReusable = false
                self.closeUpstream()
            }
            self.finish(.end(trailers), context: context)
        }
    }

    func upstreamClosed(_ upstream: UpstreamHandler) {
        guard upstream === self.upstream else {
            return
        }
        self.upstream = nil
        self.upstreamReady = false
        self.upstreamReusable = false
        guard self.phase == .forwarding, self.plan != nil else {
            return
        }
        if self.responseHeadSent {
            self.abortDownstream(reason: .upstreamReset)
        } else {
            self.respond(status: 502, reason: .upstreamReset)
        }
    }

    func flushDownstream() {
        self.context?.flush()
    }

    private func closeUpstream() {
        guard let upstream = self.upstream else {
            return
        }
        self.upstream = nil
        self.upstreamReady = false
        self.upstreamReusable = false
        upstream.close()
    }

    private func cancelTimers() {
        self.timer?.cancel()
        self.timer = nil
        self.delayTimer?.cancel()
        self.delayTimer = nil
    }

    private func timedOut(generation: Int) {
        guard generation == self.generation, self.phase == .forwarding else {
            return
        }
        self.closeUpstream()
        if self.responseHeadSent {
            self.abortDownstream(reason: .timeout)
        } else {
            self.respond(status: 504, reason: .timeout)
        }
    }

    // MARK: Responses

    /// Answers the current request from the proxy itself, with `x-weft-reason`.
    private func respond(status: Int, reason: ProxyReason, location: String? = nil) {
        guard let context = self.context else {
            return
        }
        // `finish` closes an upstream this request was using (it is not reusable until its response head says so).
        self.status = status
        self.reason = reason
        var headers = HTTPHeaders()
        headers.add(name: "x-weft-reason", value: reason.rawValue)
        if let location {
            headers.add(name: "location", value: location)
        }
        let body = "\(reason.rawValue)\n"
        headers.add(name: "content-type", value: "text/plain; charset=utf-8")
        headers.add(name: "content-length", value: String(body.utf8.count))
        if !self.keepAlive {
            headers.add(name: "connection", value: "close")
        }
        self.responseHeadSent = true
        let head = HTTPResponseHead(
            version: self.version, status: HTTPResponseStatus(statusCode: status), headers: headers)
        context.write(self.wrapOutboundOut(.head(head)), promise: nil)
        context.write(
            self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        self.finish(.end(nil), context: context)
        context.flush()
    }

    /// Writes the response end, records the request, and returns to idle (or drains the request body).
    private func finish(_ end: HTTPServerResponsePart, context: ChannelHandlerContext) {
        self.cancelTimers()
        self.endLease()
        self.shared.metrics.record(
            self.shared.direction, status: self.status, reason: self.reason, started: self.started)
        self.plan = nil
        self.phase = self.requestEnded ? .idle : .draining
        if !self.upstreamReusable {
            self.closeUpstream()
        }
        if self.keepAlive {
            // Flush now: closing the upstream above means its read-complete (which flushes) may never come.
            context.writeAndFlush(self.wrapOutboundOut(end), promise: nil)
        } else {
            context.writeAndFlush(self.wrapOutboundOut(end)).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        }
        self.resumeReads()
    }

    /// The response head already went out: the only way to signal failure is to close the connection.
    private func abortDownstream(reason: ProxyReason) {
        self.cancelTimers()
        self.endLease()
        self.reason = reason
        self.shared.metrics.record(
            self.shared.direction, status: self.status, reason: reason, started: self.started)
        self.plan = nil
        self.phase = .draining
        self.closeUpstream()
        self.context?.close(promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension ProxyServerHandler: Sendable {}
