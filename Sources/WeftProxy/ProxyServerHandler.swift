import NIOCore
import NIOHTTP1
import NIOPosix
import ProxyConfig
import ProxyCore

/// Proxies the requests of one downstream HTTP/1.1 connection (one at a time: a pipelined request waits in
/// `pipelined` until the one before it is answered) or of one HTTP/2 stream (behind `HTTP2ServerStreamCodec`):
/// routes on the head, takes an upstream stream from the event loop's `UpstreamPool`, and forwards body parts
/// both ways as they arrive, reading from a side only while the other can write.
///
/// Retries: while a route's retry policy may still retry, the request's parts are kept (up to
/// `ProxyLimits.retryBufferBytes`; a larger body turns retries off for that request). A try that fails before
/// its response head reaches the client (connect failure, reset, per-try timeout, a status `retryOn` names)
/// is retried on a newly picked endpoint after a jittered backoff, if the `RetryStateMachine` and the
/// cluster's retry budget allow.
final class ProxyServerHandler: ChannelDuplexHandler, RemovableChannelHandler, UpstreamRequester, UpstreamDelegate {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let shared: ProxyListenerContext
    private var context: ChannelHandlerContext?
    /// Which request part is served, when the request is over, whether the connection stays open.
    private var exchange: ExchangeStateMachine
    /// Serving waiting (pipelined) parts: a part served in that loop whose answer came at once must not start
    /// another loop.
    private var servingWaiting = false
    /// Incremented per request and per try: callbacks of an older one (timers, connects) are ignored.
    private var ticket = 0
    /// How long a closing connection keeps reading after its answer before it closes (see `lingeringClose`).
    static let lingerTime = TimeAmount.seconds(2)
    private var version = HTTPVersion.http1_1
    private var requestHead: HTTPRequestHead?
    private var isGRPC = false
    private var isUpgrade = false
    /// Body parts go upstream (false: the request is framed without a body, e.g. TRACE).
    private var forwardsBody = true
    /// `Expect: 100-continue`; and whether the proxy answered `100 Continue`.
    private var expectsContinue = false
    private var continueSent = false
    /// An HTTP/2 GET, HEAD or DELETE without `content-length`, routed once the next part (or the end of this
    /// read) shows whether a body follows, so that it is framed right for an HTTP/1.1 upstream.
    private var deferredHead: HTTPRequestHead?
    /// Status, reason, sizes and tries of the current request, for metrics, the access log and its span.
    private var record: ExchangeRecord
    /// The request's forwarding plan, boxed: inline it made every connection (idle ones included) about 700
    /// bytes larger; boxed it costs one allocation per forwarded request.
    private var planBox: ForwardPlanBox?
    private var target: UpstreamTarget?
    /// The current try's hold on its endpoint (outbound), ended when the try is over.
    private var lease: EndpointLease?
    private var retry: RetryStateMachine?
    /// Parts waiting for an upstream, and parts kept for retries.
    private var buffers = RequestBuffers()
    /// Stalled request bodies (`ProxyLimits.bodyTimeout`).
    private var bodyStall = BodyStallStateMachine()
    private var bodyTimer: Scheduled<Void>?
    /// Balancer state for an event loop outside the listener's group (not expected; per connection then).
    private var connectionRuntime: ClusterRuntime?
    private var connectionPool: UpstreamPool?
    private var requestTimer: Scheduled<Void>?
    private var tryTimer: Scheduled<Void>?
    private var delayTimer: Scheduled<Void>?
    private var waiter: Int?
    private var upstream: UpstreamHandler?
    /// The current upstream has the request head (what pending parts wait for).
    private var upstreamReady = false
    /// The current upstream may take another request after this one.
    private var upstreamReusable = false
    private var readPending = false
    private var mirror: MirrorRequest?
    private var span: ProxySpan?
    /// The upstream's `101` to an upgrade request, until its end arrives.
    private var upgradeResponse: HTTPResponseHead?
    /// Raw-byte guard in front of the HTTP/1.1 decoder (header timeout), when there is one.
    private weak var guardHandler: DownstreamGuard?
    /// The downstream's verified mTLS identity (inbound; nil: plaintext).
    private let peer: PeerIdentity?

    init(
        _ shared: ProxyListenerContext, isHTTP2: Bool = false, guardHandler: DownstreamGuard? = nil,
        peer: PeerIdentity? = nil
    ) {
        self.shared = shared
        self.exchange = ExchangeStateMachine(isHTTP2: isHTTP2)
        self.record = ExchangeRecord(direction: shared.direction, started: .now())
        self.guardHandler = guardHandler
        self.peer = peer
    }

    private var isHTTP2: Bool { self.exchange.isHTTP2 }

    var isWritable: Bool { self.context?.channel.isWritable ?? false }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        self.stopBodyTimer()
        self.buffers.releaseAll(overload: self.shared.overload)
    }

    // MARK: Downstream events

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.exchange.read(self.unwrapInboundIn(data)) {
        case .serve(let part):
            self.serve(part, context: context)
        case .wait, .discard:
            break
        case .close:
            context.close(promise: nil)
        }
    }

    /// Serves the parts that waited, in order, as far as the request being answered allows.
    private func serveWaitingParts(context: ChannelHandlerContext) {
        guard !self.servingWaiting else {
            // Called from a part served below (its answer came at once): the loop goes on from there.
            return
        }
        self.servingWaiting = true
        defer { self.servingWaiting = false }
        var served = false
        while let part = self.exchange.nextWaitingPart() {
            self.serve(part, context: context)
            served = true
        }
        if served {
            // What the end of a read does: no read-complete follows parts served from the queue.
            self.partsServed(context: context)
        }
        if !self.exchange.hasWaitingParts {
            self.resumeReads()
        }
    }

    private func serve(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch part {
        case .head(let head):
            if self.isHTTP2, head.awaitsBodyKnowledge {
                self.deferredHead = head
                return
            }
            self.requestHead(head, bodyFollows: nil, context: context)
        case .body(let buffer):
            self.routeDeferredHead(bodyFollows: true, context: context)
            self.bodyStall.bodyRead()
            self.record.requestBytes += buffer.readableBytes
            if self.forwardsBody {
                self.requestPart(.body(.byteBuffer(buffer)))
            }
        case .end(let trailers):
            self.routeDeferredHead(bodyFollows: false, context: context)
            let action = self.exchange.requestEndRead()
            self.stopBodyTimer()
            switch action {
            case .forward:
                self.requestPart(.end(trailers))
            case .drained(let close):
                self.requestHead = nil
                guard !close else {
                    // Draining started after the answer went out (`ChannelShouldQuiesceEvent`): close now.
                    context.close(promise: nil)
                    return
                }
                self.guardHandler?.requestDone(reusable: true)
                self.serveWaitingParts(context: context)
            case .ignore:
                break
            }
        }
    }

    /// Draining (HTTP/1.1): an idle connection closes at once; a busy one closes after its answer, and requests
    /// pipelined behind it are not served. (HTTP/2 streams never see it: the connection's handler sends GOAWAY.)
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ChannelShouldQuiesceEvent, !self.isHTTP2 else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        if self.exchange.quiesce() {
            context.close(promise: nil)
        }
    }

    /// Routes a deferred HTTP/2 head now that it is known whether a body follows.
    private func routeDeferredHead(bodyFollows: Bool, context: ChannelHandlerContext) {
        if let head = self.deferredHead {
            self.deferredHead = nil
            self.requestHead(head, bodyFollows: bodyFollows, context: context)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // No end in this read: the stream goes on, so a body follows.
        self.routeDeferredHead(bodyFollows: true, context: context)
        self.partsServed(context: context)
        context.fireChannelReadComplete()
    }

    /// After a read's parts: the body timer, and one flush of what they wrote upstream.
    private func partsServed(context: ChannelHandlerContext) {
        if self.bodyStall.readComplete(waiting: self.exchange.waitsForBody) == .arm {
            self.armBodyTimer(context: context)
        }
        if self.upstreamReady {
            self.upstream?.flush()
        }
        self.mirror?.flush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if self.exchange.phase == .forwarding, !self.exchange.responseStarted, self.planBox != nil {
            // The client left before any answer: record it (Envoy's and nginx's 499).
            self.record.status = 499
            self.record.reason = .downstreamReset
            self.report()
        }
        self.deferredHead = nil
        self.cancelTimers()
        self.cancelWait()
        self.endLease()
        self.ticket += 1
        self.exchange.connectionClosed()
        self.closeUpstream()
        self.mirror?.abandon()
        self.mirror = nil
        self.stopBodyTimer()
        self.buffers.releaseAll(overload: self.shared.overload)
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
        self.exchange.holdsReads(upstreamTakesBody: self.upstreamReady && (self.upstream?.isWritable ?? false))
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

    private func requestHead(_ head: HTTPRequestHead, bodyFollows: Bool?, context: ChannelHandlerContext) {
        self.ticket += 1
        self.endLease()
        self.guardHandler?.headReceived()
        self.exchange.requestStarted(keepAlive: head.headers.keepsAlive(version: head.version))
        self.version = head.version
        self.requestHead = head
        self.isGRPC = head.isGRPC
        let envelope = RequestEnvelope(
            head, isHTTP2: self.isHTTP2, bodyFollows: bodyFollows, upgradeProtocols: self.shared.limits.upgradeProtocols
        )
        self.isUpgrade = envelope.upgrade != nil
        if envelope.refusedUpgrade {
            self.exchange.closeAfterResponse()
        }
        self.forwardsBody = envelope.forwardsBody
        self.expectsContinue = envelope.expectsContinue
        self.continueSent = false
        self.record = ExchangeRecord(direction: self.shared.direction, started: .now())
        self.upgradeResponse = nil
        self.retry = nil
        self.target = nil
        self.buffers.releaseAll(overload: self.shared.overload)
        self.stopBodyTimer()
        if !self.shared.limits.admits(head.headers) {
            self.respond(status: 431, reason: .headerLimits)
            return
        }
        if case .invalid(let status) = envelope.framing {
            // The body cannot be delimited safely: answer, and close (the rest of the bytes cannot be trusted).
            self.exchange.closeAfterResponse()
            self.respond(status: status, reason: .malformedRequest)
            return
        }
        guard let state = self.shared.store.current else {
            self.respond(status: 503, reason: .noConfig)
            return
        }
        if head.method == .CONNECT {
            guard self.shared.direction == .outbound, !self.isHTTP2 else {
                self.respond(status: 405, reason: .unsupportedMethod)
                return
            }
            let runtime = self.runtime(for: state, on: context.eventLoop)
            switch state.decideConnect(head, runtime: runtime, remoteAddress: context.channel.remoteAddress) {
            case .respond(let status, let reason):
                self.respond(status: status, reason: reason)
            case .tunnel(let target, let lease, let service):
                self.openConnectTunnel(target, lease: lease, service: service, context: context)
            }
            return
        }
        let decision: ProxyDecision
        let runtime = self.runtime(for: state, on: context.eventLoop)
        let remote = context.channel.remoteAddress
        if self.shared.direction == .outbound {
            decision = state.decideOutbound(
                head, envelope: envelope, runtime: runtime, remoteAddress: remote, captured: self.shared.captured)
        } else {
            decision = state.decideInbound(
                head, envelope: envelope, runtime: runtime, remoteAddress: remote, peer: self.peer?.spiffeID,
                captured: self.shared.captured)
        }
        switch decision {
        case .respond(let status, let reason, let location):
            if reason == .rbacDenied {
                self.shared.metrics.recordRBACDenied(self.shared.direction, protocol: "http")
            }
            self.respond(status: status, reason: reason, location: location)
        case .forward(let plan):
            if self.expectsContinue {
                // The proxy will take the body: let the client send it now (the upstream never sees the Expect).
                self.continueSent = true
                context.writeAndFlush(
                    self.wrapOutboundOut(.head(HTTPResponseHead(version: self.version, status: .continue))),
                    promise: nil)
            }
            self.forward(plan, context: context)
        }
    }

    private func forward(_ plan: ForwardPlan, context: ChannelHandlerContext) {
        var plan = plan
        if let tracer = self.shared.tracer {
            let outbound = self.shared.direction == .outbound
            let span = tracer.startSpan(
                "\(self.shared.direction.rawValue) \(plan.balancer?.cluster.service ?? plan.target.cluster)",
                headers: plan.head.headers, kind: outbound ? .client : .server)
            span.inject(into: &plan.head.headers)
            self.span = span
        }
        self.planBox = ForwardPlanBox(plan)
        self.lease = plan.lease
        self.target = plan.target
        if let service = plan.balancer?.cluster.service {
            self.record.service = service
        }
        if let policy = plan.retry, !self.isUpgrade {
            self.retry = RetryStateMachine(policy: policy, method: plan.head.method.rawValue)
            self.buffers.retainForRetries()
        }
        if let mirror = plan.mirror, let pool = self.pool(on: context.eventLoop) {
            self.mirror = MirrorRequest.start(
                mirror, pool: pool, bufferLimit: self.shared.limits.mirrorBufferBytes)
        }
        self.buffers.holdHead(plan.head)
        let ticket = self.ticket
        let loop = context.eventLoop.assumeIsolated()
        if let timeout = plan.timeout {
            self.requestTimer = loop.scheduleTask(in: timeout) { [self] in
                self.timedOut(ticket: ticket)
            }
        }
        if let delay = plan.delay {
            self.delayTimer = loop.scheduleTask(in: delay) { [self] in
                guard self.ticket == ticket, self.exchange.phase == .forwarding else {
                    return
                }
                self.startTry()
            }
        } else {
            self.startTry()
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

    private func pool(on loop: any EventLoop) -> UpstreamPool? {
        if let pool = self.shared.pools.pool(on: loop) {
            return pool
        }
        if self.connectionPool == nil {
            self.connectionPool = UpstreamPool(
                eventLoop: loop, decoderLimits: self.shared.limits.decoderLimits, meshTLS: self.shared.meshTLS)
        }
        return self.connectionPool
    }

    /// Releases the current try's endpoint (least request counts it as finished).
    private func endLease() {
        guard let lease = self.lease else {
            return
        }
        self.lease = nil
        lease.end()
    }

    private func requestPart(_ part: HTTPClientRequestPart) {
        guard self.exchange.phase == .forwarding else {
            return
        }
        let overload = self.shared.overload
        if self.buffers.retain(part, limit: self.shared.limits.retryBufferBytes, overload: overload) == .overloaded {
            // The process holds too much already: this request streams and is not retried.
            self.shared.metrics.recordOverload(self.shared.direction, limit: .bufferedBytes)
        }
        self.mirror?.send(part)
        if self.upstreamReady, let upstream = self.upstream {
            upstream.send(part)
        } else if !self.buffers.hold(part, overload: overload) {
            // No upstream yet and no room to hold the body meanwhile: 503; the rest of the body is read and
            // discarded (draining), not held.
            self.shared.metrics.recordOverload(self.shared.direction, limit: .bufferedBytes)
            self.cancelWait()
            self.closeUpstream()
            self.respond(status: 503, reason: .overload)
        }
    }

    // MARK: Stalled bodies

    private func armBodyTimer(context: ChannelHandlerContext) {
        self.bodyTimer = context.eventLoop.assumeIsolated().scheduleTask(in: self.shared.limits.bodyTimeout) {
            [self] in
            self.bodyTimer = nil
            switch self.bodyStall.timerFired(waiting: self.exchange.waitsForBody, held: self.readPending) {
            case .arm:
                if let context = self.context {
                    self.armBodyTimer(context: context)
                }
            case .stalled:
                self.bodyStalled()
            case .none:
                break
            }
        }
    }

    private func stopBodyTimer() {
        self.bodyTimer?.cancel()
        self.bodyTimer = nil
        self.bodyStall.reset()
    }

    /// The client stopped sending its body: `408 body_timeout` if no response began (the upstream, which may
    /// have part of the request, is closed), otherwise the connection (HTTP/2: the stream) is reset.
    private func bodyStalled() {
        guard let context = self.context else {
            return
        }
        if self.exchange.phase == .forwarding, !self.exchange.responseStarted {
            self.cancelWait()
            self.closeUpstream()
            self.mirror?.abandon()
            self.mirror = nil
            self.exchange.closeAfterResponse()
            self.respond(status: 408, reason: .bodyTimeout)
        } else if self.exchange.phase == .forwarding {
            self.abortDownstream(reason: .bodyTimeout)
        } else {
            // Draining the body of an answered request: nothing to record, just close.
            self.buffers.releaseAll(overload: self.shared.overload)
            context.close(promise: nil)
        }
    }

    // MARK: Tries

    /// Asks the pool for a stream to the current target, with the per-try timeout armed.
    private func startTry() {
        guard let target = self.target, let context = self.context, let pool = self.pool(on: context.eventLoop)
        else {
            return
        }
        self.ticket += 1
        self.record.tries += 1
        self.upstreamReady = false
        let ticket = self.ticket
        if let perTry = self.retry?.perTryTimeoutNanos {
            self.tryTimer = context.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(Int64(perTry))) {
                [self] in
                self.tryTimedOut(ticket: ticket)
            }
        }
        self.waiter = pool.acquire(target, for: self, ticket: ticket)
    }

    func upstreamAcquired(_ stream: UpstreamHandler, ticket: Int) {
        guard ticket == self.ticket, self.exchange.phase == .forwarding else {
            // Nobody wants it any more: an untouched connection goes back to the pool.
            if let context = self.context, let pool = self.pool(on: context.eventLoop) {
                pool.release(stream, reusable: true)
            } else {
                stream.close()
            }
            return
        }
        self.waiter = nil
        self.upstream = stream
        stream.attach(self)
        self.upstreamReady = true
        self.upstreamReusable = false
        for part in self.buffers.pending {
            stream.send(part)
        }
        self.buffers.clearPending(overload: self.shared.overload)
        stream.flush()
        self.resumeReads()
    }

    func upstreamUnavailable(_ reason: ProxyReason, ticket: Int) {
        guard ticket == self.ticket, self.exchange.phase == .forwarding else {
            return
        }
        self.waiter = nil
        if reason == .overflow {
            self.shared.metrics.recordOverflow(self.shared.direction)
            self.respond(status: 503, reason: .overflow)
            return
        }
        self.lease?.record(.connectFailure)
        self.tryFailed(.connectFailure, status: 503, reason: reason)
    }

    /// A try failed before its response head went downstream: retry if allowed, otherwise answer.
    private func tryFailed(_ outcome: TryOutcome, status: Int, reason: ProxyReason) {
        self.tryTimer?.cancel()
        self.tryTimer = nil
        self.cancelWait()
        self.closeUpstream()
        if self.scheduleRetry(after: outcome) {
            return
        }
        self.respond(status: status, reason: reason)
    }

    /// Asks the retry state machine about `outcome`; when it grants a retry, ends this try and schedules the
    /// next one (on a newly picked endpoint) after the backoff. True when a retry is scheduled.
    private func scheduleRetry(after outcome: TryOutcome) -> Bool {
        guard var machine = self.retry, self.buffers.retained != nil, let plan = self.planBox?.plan,
            let balancer = plan.balancer, let context = self.context
        else {
            return false
        }
        let action = machine.tryFinished(
            outcome, now: NIODeadline.now().uptimeNanoseconds, budget: &balancer.budget, random: &balancer.random)
        self.retry = machine
        guard case .retry(let backoff) = action else {
            if case .done(.budgetExhausted) = action {
                self.shared.metrics.recordRetry(self.shared.direction, granted: false)
            }
            return false
        }
        self.shared.metrics.recordRetry(self.shared.direction, granted: true)
        self.closeUpstream()
        self.endLease()
        self.ticket += 1
        let ticket = self.ticket
        self.buffers.resend(head: plan.head, overload: self.shared.overload)
        self.delayTimer = context.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(Int64(backoff))) {
            [self] in
            guard self.ticket == ticket, self.exchange.phase == .forwarding, let head = self.requestHead else {
                return
            }
            guard let lease = balancer.pick(head, remoteAddress: self.context?.channel.remoteAddress) else {
                self.respond(status: 503, reason: .noHealthyUpstream)
                return
            }
            self.lease = lease
            self.target = balancer.target(lease.endpoint, downstream: head.version)
            self.startTry()
        }
        return true
    }

    private func tryTimedOut(ticket: Int) {
        guard ticket == self.ticket, self.exchange.phase == .forwarding, !self.exchange.responseStarted else {
            return
        }
        self.lease?.record(.status(504))
        self.tryFailed(.perTryTimeout, status: 504, reason: .timeout)
    }

    // MARK: Upstream

    func upstreamRead(_ part: HTTPClientResponsePart, from upstream: UpstreamHandler) {
        guard upstream === self.upstream, self.exchange.phase == .forwarding, let context = self.context else {
            return
        }
        switch part {
        case .head(let response):
            self.upstreamHead(response, context: context)
        case .body(let buffer):
            self.record.responseBytes += buffer.readableBytes
            context.write(self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        case .end(let trailers):
            if let upgrade = self.upgradeResponse {
                self.upgradeResponse = nil
                self.switchToTunnel(upgrade, context: context)
                return
            }
            if !self.exchange.requestEnded {
                // The upstream answered before the whole request was sent: it cannot take another one.
                self.upstreamReusable = false
            }
            self.finish(.end(trailers), context: context)
        }
    }

    private func upstreamHead(_ response: HTTPResponseHead, context: ChannelHandlerContext) {
        let status = Int(response.status.code)
        if status == 100 {
            // `Expect: 100-continue` interim answers are the proxy's own business.
            return
        }
        if status == 101, !self.isUpgrade {
            // Switching protocols on a request that asked for no (allowed) upgrade: never tunnel it.
            self.lease?.record(.status(502))
            self.closeUpstream()
            self.respond(status: 502, reason: .upstreamReset)
            return
        }
        self.tryTimer?.cancel()
        self.tryTimer = nil
        self.lease?.record(.status(status))
        if self.retry != nil, status >= 300 || response.headers.contains(name: "grpc-status") {
            let grpcStatus = response.headers.first(name: "grpc-status").flatMap { Int($0) }
            if self.scheduleRetry(after: .response(status: status, grpcStatus: grpcStatus)) {
                return
            }
        }
        self.buffers.dropRetained(overload: self.shared.overload)
        if self.isUpgrade, status == 101 {
            // The decoder ends the 101 response right after its head; the tunnel starts after that end.
            self.upgradeResponse = response
            return
        }
        let head = DownstreamResponse.forwarded(
            response, rewrites: self.planBox?.plan.responseHeaders ?? [], version: self.version,
            connection: self.connectionHeader)
        self.record.status = status
        self.exchange.responseHeadSent()
        self.upstreamReusable = response.headers.keepsAlive(version: response.version)
        context.write(self.wrapOutboundOut(.head(head)), promise: nil)
    }

    /// What this response's `connection` field says.
    private var connectionHeader: DownstreamResponse.Connection {
        DownstreamResponse.Connection(isHTTP2: self.isHTTP2, keepAlive: self.exchange.keepAlive, version: self.version)
    }

    func upstreamClosed(_ upstream: UpstreamHandler) {
        guard upstream === self.upstream else {
            return
        }
        self.upstream = nil
        self.upstreamReady = false
        self.upstreamReusable = false
        guard self.exchange.phase == .forwarding, self.planBox != nil else {
            return
        }
        if self.exchange.responseStarted {
            self.abortDownstream(reason: .upstreamReset)
        } else if upstream.refusedStream {
            // Never processed by the app: retried as `refused-stream`, even for a non-idempotent method.
            self.lease?.record(.connectFailure)
            self.tryFailed(.refusedStream, status: 503, reason: .upstreamReset)
        } else {
            self.lease?.record(.status(502))
            self.tryFailed(.reset, status: 502, reason: .upstreamReset)
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
        upstream.detach()
        upstream.close()
    }

    /// Hands the current upstream back to the pool (kept alive if it can take another request).
    private func releaseUpstream() {
        guard let upstream = self.upstream else {
            return
        }
        let reusable = self.upstreamReusable && self.exchange.requestEnded
        self.upstream = nil
        self.upstreamReady = false
        self.upstreamReusable = false
        if let context = self.context, let pool = self.pool(on: context.eventLoop) {
            pool.release(upstream, reusable: reusable)
        } else {
            upstream.detach()
            upstream.close()
        }
    }

    private func cancelWait() {
        guard let waiter = self.waiter else {
            return
        }
        self.waiter = nil
        if let context = self.context {
            self.pool(on: context.eventLoop)?.cancel(waiter: waiter)
        }
    }

    private func cancelTimers() {
        self.requestTimer?.cancel()
        self.requestTimer = nil
        self.tryTimer?.cancel()
        self.tryTimer = nil
        self.delayTimer?.cancel()
        self.delayTimer = nil
    }

    private func timedOut(ticket: Int) {
        // The request timer belongs to the request, whose ticket moved on with each try: compare loosely.
        guard ticket <= self.ticket, self.exchange.phase == .forwarding, self.planBox != nil else {
            return
        }
        self.cancelWait()
        self.closeUpstream()
        self.lease?.record(.status(504))
        if self.exchange.responseStarted {
            self.abortDownstream(reason: .timeout)
        } else {
            self.respond(status: 504, reason: .timeout)
        }
    }

    // MARK: Tunnels (WebSocket, CONNECT)

    /// The upstream accepted a protocol upgrade: sends the `101` downstream, then turns both connections
    /// into a byte tunnel (the HTTP codecs leave both pipelines).
    private func switchToTunnel(_ response: HTTPResponseHead, context: ChannelHandlerContext) {
        guard let upstream = self.upstream, upstream.kind == .http1, let upstreamChannel = upstream.channel else {
            self.abortDownstream(reason: .upstreamReset)
            return
        }
        let head = DownstreamResponse.forwarded(
            response, rewrites: self.planBox?.plan.responseHeaders ?? [], version: self.version,
            connection: .implicit, upgrade: true)
        self.record.status = 101
        self.exchange.tunnelStarted()
        self.cancelTimers()
        self.endLease()
        self.upstream = nil
        upstream.detach()
        context.writeAndFlush(self.wrapOutboundOut(.head(head)), promise: nil)
        self.report()
        self.guardHandler?.tunnelStarted()
        joinUpgradeTunnel(
            downstream: context.channel, upstream: upstreamChannel, metrics: self.shared.metrics,
            direction: self.shared.direction)
    }

    /// CONNECT: opens a TCP connection to `target`; once it is up, answers `200 Connection Established` and
    /// joins both connections as a byte tunnel (opaque TCP through the outbound port, without iptables).
    private func openConnectTunnel(
        _ target: UpstreamTarget, lease: EndpointLease, service: String, context: ChannelHandlerContext
    ) {
        self.lease = lease
        self.target = target
        self.record.service = service
        let ticket = self.ticket
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        dialTunnel(target, on: context.eventLoop, metrics: self.shared.metrics, direction: self.shared.direction)
            .whenComplete { result in
                let handler = bound.value
                guard handler.ticket == ticket, handler.exchange.phase == .forwarding, let context = handler.context
                else {
                    if case .success(let upstream) = result {
                        upstream.close()
                    }
                    return
                }
                switch result {
                case .success(let upstream):
                    handler.connectTunnelUp(upstream, context: context)
                case .failure:
                    handler.lease?.record(.connectFailure)
                    handler.respond(status: 503, reason: .upstreamConnectFailure)
                }
            }
    }

    private func connectTunnelUp(_ upstream: TunnelHandler, context: ChannelHandlerContext) {
        self.record.status = 200
        self.exchange.tunnelStarted()
        self.cancelTimers()
        self.endLease()
        self.report()
        self.guardHandler?.tunnelStarted()
        joinConnectTunnel(
            downstream: context.channel, upstream: upstream, metrics: self.shared.metrics,
            direction: self.shared.direction)
    }

    // MARK: Responses

    /// Answers the current request from the proxy itself (`DownstreamResponse.Local`).
    private func respond(status: Int, reason: ProxyReason, location: String? = nil) {
        guard let context = self.context else {
            return
        }
        self.cancelWait()
        self.exchange.answeringLocally(bodyExpectedAfterContinue: self.expectsContinue && !self.continueSent)
        // The upstream of a failed try is not reusable: `finish` closes it.
        self.upstreamReusable = false
        let answer = DownstreamResponse.Local(
            status: status, reason: reason, location: location, isGRPC: self.isGRPC, version: self.version,
            connection: self.connectionHeader)
        self.record.reason = reason
        self.record.status = answer.status
        self.exchange.responseHeadSent()
        context.write(self.wrapOutboundOut(.head(answer.head)), promise: nil)
        if let body = answer.body {
            self.record.responseBytes += body.utf8.count
            context.write(
                self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        }
        self.finish(.end(answer.trailers), context: context)
    }

    /// Reports the request (metrics, access log, span).
    private func report() {
        self.record.report(
            to: self.shared, head: self.requestHead, forwarded: self.planBox?.plan.head, target: self.target,
            span: self.span, isHTTP2: self.isHTTP2)
        self.span = nil
    }

    /// Writes the response end, records the request, and returns to idle (or drains the request body).
    private func finish(_ end: HTTPServerResponsePart, context: ChannelHandlerContext) {
        self.cancelTimers()
        self.endLease()
        self.report()
        self.planBox = nil
        self.buffers.releaseAll(overload: self.shared.overload)
        self.mirror = nil
        let finish = self.exchange.responseFinished()
        if finish.requestDone {
            self.guardHandler?.requestDone(reusable: !finish.closes)
        }
        self.releaseUpstream()
        if finish.closes {
            context.writeAndFlush(self.wrapOutboundOut(end)).assumeIsolated().whenComplete { _ in
                Self.lingeringClose(context)
            }
        } else {
            // Flush now: the upstream's read-complete (which flushes) may never come after its release.
            context.writeAndFlush(self.wrapOutboundOut(end), promise: nil)
        }
        if finish.requestDone {
            // Nothing of this request is needed any more: an idle keep-alive connection holds no header storage.
            self.requestHead = nil
            self.serveWaitingParts(context: context)
        }
        self.resumeReads()
    }

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

    /// The response head already went out: the only way to signal failure is to close the connection (or
    /// reset the HTTP/2 stream).
    private func abortDownstream(reason: ProxyReason) {
        self.cancelTimers()
        self.cancelWait()
        self.endLease()
        self.record.reason = reason
        self.report()
        self.planBox = nil
        self.buffers.releaseAll(overload: self.shared.overload)
        self.exchange.aborted()
        self.closeUpstream()
        self.context?.close(promise: nil)
    }

    /// HTTP/1.1 that cannot be parsed (NIO's decoder reports it here): `400` (`431` for an oversized head)
    /// with `x-weft-reason`, then the connection closes. Mid-response, or for any other error, it just closes.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if self.exchange.closing, !(error is IOError) {
            // Lingering after the closing answer: the decoder's complaints about what follows are expected.
            return
        }
        guard let parserError = error as? HTTPParserError,
            self.exchange.parseError(connectionActive: context.channel.isActive)
        else {
            context.close(promise: nil)
            return
        }
        self.guardHandler?.stopTimer()
        self.cancelTimers()
        self.cancelWait()
        self.endLease()
        self.ticket += 1
        self.closeUpstream()
        self.planBox = nil
        self.mirror?.abandon()
        self.mirror = nil
        if parserError == .headerOverflow {
            self.respond(status: 431, reason: .headerLimits)
        } else {
            self.respond(status: 400, reason: .malformedRequest)
        }
    }
}

@available(*, unavailable)
extension ProxyServerHandler: Sendable {}

/// A `ForwardPlan` on the heap (see `ProxyServerHandler.planBox`).
private final class ForwardPlanBox {
    let plan: ForwardPlan

    init(_ plan: ForwardPlan) {
        self.plan = plan
    }
}
