import NIOCore
import NIOHTTP1
import NIOPosix
import ProxyConfig
import ProxyCore

/// Proxies the requests of one downstream HTTP/1.1 connection (one at a time: a pipelined request waits in
/// `pipelined` until the one before it is answered) or of one HTTP/2 stream (run by `HTTP2ServerConnection`, `Downstream`):
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
    private var downstream: Downstream?
    /// Which request part is served, when the request is over, whether the connection stays open.
    private var exchange: ExchangeStateMachine
    /// Serving waiting (pipelined) parts: a part served in that loop whose answer came at once must not start
    /// another loop.
    private var servingWaiting = false
    /// Incremented per request and per try: callbacks of an older one (timers, connects) are ignored.
    private var ticket = 0
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
    /// Between a downstream read's first part and its end (`partsServed` flushes what the parts wrote upstream).
    private var inRead = false
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

    var isWritable: Bool { self.downstream?.isWritable ?? false }

    func handlerAdded(context: ChannelHandlerContext) {
        self.downstream = .connection(context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.detached()
    }

    /// The downstream is gone for good (the handler left its pipeline, the HTTP/2 stream was dropped).
    func detached() {
        self.downstream = nil
        self.stopBodyTimer()
        self.buffers.releaseAll(overload: self.shared.overload)
    }

    /// Runs this handler on one stream of an HTTP/2 connection (`HTTP2ServerConnection`), which calls the
    /// methods below that a pipeline would call as channel events.
    func attach(_ stream: HTTP2ServerStream) {
        self.downstream = .stream(stream)
    }

    // MARK: Downstream events

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.received(self.unwrapInboundIn(data))
    }

    /// A request part read from the downstream.
    func received(_ part: HTTPServerRequestPart) {
        self.inRead = true
        switch self.exchange.read(part) {
        case .serve(let part):
            self.serve(part)
        case .wait, .discard:
            break
        case .close:
            self.downstream?.close()
        }
    }

    /// Serves the parts that waited, in order, as far as the request being answered allows.
    private func serveWaitingParts() {
        guard !self.servingWaiting else {
            // Called from a part served below (its answer came at once): the loop goes on from there.
            return
        }
        self.servingWaiting = true
        defer { self.servingWaiting = false }
        var served = false
        while let part = self.exchange.nextWaitingPart() {
            self.serve(part)
            served = true
        }
        if served {
            // What the end of a read does: no read-complete follows parts served from the queue.
            self.partsServed()
        }
        if !self.exchange.hasWaitingParts {
            self.resumeReads()
        }
    }

    private func serve(_ part: HTTPServerRequestPart) {
        switch part {
        case .head(let head):
            if self.isHTTP2, head.awaitsBodyKnowledge {
                self.deferredHead = head
                return
            }
            self.requestHead(head, bodyFollows: nil)
        case .body(let buffer):
            self.routeDeferredHead(bodyFollows: true)
            self.bodyStall.bodyRead()
            self.record.requestBytes += buffer.readableBytes
            if self.forwardsBody {
                self.requestPart(.body(.byteBuffer(buffer)))
            }
        case .end(let trailers):
            self.routeDeferredHead(bodyFollows: false)
            let action = self.exchange.requestEndRead()
            self.stopBodyTimer()
            switch action {
            case .forward:
                self.requestPart(.end(trailers))
            case .drained(let close):
                self.requestHead = nil
                guard !close else {
                    // Draining started after the answer went out (`ChannelShouldQuiesceEvent`): close now.
                    self.downstream?.close()
                    return
                }
                self.guardHandler?.requestDone(reusable: true)
                self.serveWaitingParts()
            case .ignore:
                break
            }
        }
    }

    /// Draining (HTTP/1.1): an idle connection closes at once; a busy one closes after its answer, and requests
    /// pipelined behind it are not served. (HTTP/2 streams never see it: their connection sends GOAWAY.)
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
    private func routeDeferredHead(bodyFollows: Bool) {
        if let head = self.deferredHead {
            self.deferredHead = nil
            self.requestHead(head, bodyFollows: bodyFollows)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.readComplete()
        context.fireChannelReadComplete()
    }

    /// The end of one read from the downstream.
    func readComplete() {
        // No end in this read: the stream goes on, so a body follows.
        self.routeDeferredHead(bodyFollows: true)
        self.partsServed()
    }

    /// After a read's parts: the body timer, and one flush of what they wrote upstream.
    private func partsServed() {
        self.inRead = false
        if self.bodyStall.readComplete(waiting: self.exchange.waitsForBody) == .arm {
            self.armBodyTimer()
        }
        if self.upstreamReady {
            self.upstream?.flush()
        }
        self.mirror?.flush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.downstreamClosed()
        context.fireChannelInactive()
    }

    /// The downstream connection (or HTTP/2 stream) closed.
    func downstreamClosed() {
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
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.writabilityChanged()
        context.fireChannelWritabilityChanged()
    }

    /// The downstream may take more (or less) of the response now.
    func writabilityChanged() {
        self.upstream?.resumeReads()
    }

    func read(context: ChannelHandlerContext) {
        if self.wantsRead() {
            context.read()
        }
    }

    /// Whether the downstream should read more of the request now; false holds the read until `resumeReads`.
    func wantsRead() -> Bool {
        if self.holdsReads {
            self.readPending = true
            return false
        }
        return true
    }

    private var holdsReads: Bool {
        self.exchange.holdsReads(upstreamTakesBody: self.upstreamReady && (self.upstream?.isWritable ?? false))
    }

    /// Reads from the downstream again if a read was held back and nothing holds it now.
    func resumeReads() {
        guard self.readPending, !self.holdsReads, let downstream = self.downstream else {
            return
        }
        self.readPending = false
        downstream.read()
    }

    // MARK: Request

    private func requestHead(_ head: HTTPRequestHead, bodyFollows: Bool?) {
        guard let downstream = self.downstream else {
            return
        }
        self.ticket += 1
        self.endLease()
        self.guardHandler?.headReceived()
        let envelope = RequestEnvelope(
            head, isHTTP2: self.isHTTP2, bodyFollows: bodyFollows, upgradeProtocols: self.shared.limits.upgradeProtocols
        )
        self.exchange.requestStarted(keepAlive: envelope.connection.keepsAlive(version: head.version))
        self.version = head.version
        self.requestHead = head
        self.isGRPC = head.isGRPC
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
            let runtime = self.runtime(for: state, on: downstream.eventLoop)
            switch state.decideConnect(head, runtime: runtime, remoteAddress: downstream.remoteAddress) {
            case .respond(let status, let reason):
                self.respond(status: status, reason: reason)
            case .tunnel(let target, let lease, let service):
                self.openConnectTunnel(target, lease: lease, service: service, on: downstream.eventLoop)
            }
            return
        }
        let decision: ProxyDecision
        let runtime = self.runtime(for: state, on: downstream.eventLoop)
        let remote = downstream.remoteAddress
        if self.shared.direction == .outbound {
            decision = state.decideOutbound(
                head, envelope: envelope, runtime: runtime, remoteAddress: remote, captured: self.shared.captured)
        } else {
            decision = state.decideInbound(
                head, envelope: envelope, runtime: runtime, remoteAddress: remote, peer: self.peer?.spiffeID,
                captured: self.shared.captured, appConnectTimeout: self.shared.limits.appConnectTimeout)
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
                downstream.writeAndFlush(.head(HTTPResponseHead(version: self.version, status: .continue)))
            }
            self.forward(plan)
        }
    }

    private func forward(_ plan: ForwardPlan) {
        guard let downstream = self.downstream else {
            return
        }
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
        if let mirror = plan.mirror, let pool = self.pool(on: downstream.eventLoop) {
            self.mirror = MirrorRequest.start(
                mirror, pool: pool, bufferLimit: self.shared.limits.mirrorBufferBytes)
        }
        self.buffers.holdHead(plan.head)
        let ticket = self.ticket
        let loop = downstream.eventLoop.assumeIsolated()
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

    private func armBodyTimer() {
        guard let downstream = self.downstream else {
            return
        }
        self.bodyTimer = downstream.eventLoop.assumeIsolated().scheduleTask(in: self.shared.limits.bodyTimeout) {
            [self] in
            self.bodyTimer = nil
            switch self.bodyStall.timerFired(waiting: self.exchange.waitsForBody, held: self.readPending) {
            case .arm:
                self.armBodyTimer()
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
        guard let downstream = self.downstream else {
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
            downstream.close()
        }
    }

    // MARK: Tries

    /// Asks the pool for a stream to the current target, with the per-try timeout armed.
    private func startTry() {
        guard let target = self.target, let downstream = self.downstream, let pool = self.pool(on: downstream.eventLoop)
        else {
            return
        }
        self.ticket += 1
        self.record.tries += 1
        self.upstreamReady = false
        let ticket = self.ticket
        if let perTry = self.retry?.perTryTimeoutNanos {
            self.tryTimer = downstream.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(Int64(perTry))) {
                [self] in
                self.tryTimedOut(ticket: ticket)
            }
        }
        self.waiter = pool.acquire(target, for: self, ticket: ticket)
    }

    func upstreamAcquired(_ stream: UpstreamHandler, ticket: Int) {
        guard ticket == self.ticket, self.exchange.phase == .forwarding else {
            // Nobody wants it any more: an untouched connection goes back to the pool.
            if let downstream = self.downstream, let pool = self.pool(on: downstream.eventLoop) {
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
        if !self.inRead {
            // Inside a read (a stream taken at once), the read's end flushes: a GET's head and end leave together,
            // as one HTTP/2 HEADERS frame with END_STREAM (flushed here, the head went alone, an empty DATA frame
            // ended the stream later, and an h2 server that had answered meanwhile reset it).
            stream.flush()
        }
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
            let balancer = plan.balancer, let downstream = self.downstream
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
        self.delayTimer = downstream.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(Int64(backoff))) {
            [self] in
            guard self.ticket == ticket, self.exchange.phase == .forwarding, let head = self.requestHead else {
                return
            }
            guard let lease = balancer.pick(head, remoteAddress: self.downstream?.remoteAddress) else {
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
        guard upstream === self.upstream, self.exchange.phase == .forwarding, let downstream = self.downstream else {
            return
        }
        switch part {
        case .head(let response):
            self.upstreamHead(response)
        case .body(let buffer):
            self.record.responseBytes += buffer.readableBytes
            downstream.write(.body(.byteBuffer(buffer)))
        case .end(let trailers):
            if let upgrade = self.upgradeResponse {
                self.upgradeResponse = nil
                self.switchToTunnel(upgrade)
                return
            }
            if !self.exchange.requestEnded {
                // The upstream answered before the whole request was sent: it cannot take another one.
                self.upstreamReusable = false
            }
            self.finish(.end(trailers))
        }
    }

    private func upstreamHead(_ response: HTTPResponseHead) {
        guard let downstream = self.downstream else {
            return
        }
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
        let (head, upstreamConnection) = DownstreamResponse.forwarded(
            response, rewrites: self.planBox?.plan.responseHeaders ?? [], version: self.version,
            connection: self.connectionHeader)
        self.record.status = status
        self.exchange.responseHeadSent()
        self.upstreamReusable = upstreamConnection.keepsAlive(version: response.version)
        downstream.write(.head(head))
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
        self.downstream?.flush()
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
        if let downstream = self.downstream, let pool = self.pool(on: downstream.eventLoop) {
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
        if let downstream = self.downstream {
            self.pool(on: downstream.eventLoop)?.cancel(waiter: waiter)
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
    private func switchToTunnel(_ response: HTTPResponseHead) {
        guard let upstream = self.upstream, upstream.kind == .http1, let upstreamChannel = upstream.channel,
            let downstream = self.downstream, let channel = downstream.channel
        else {
            self.abortDownstream(reason: .upstreamReset)
            return
        }
        let head = DownstreamResponse.forwarded(
            response, rewrites: self.planBox?.plan.responseHeaders ?? [], version: self.version,
            connection: .implicit, upgrade: true
        ).head
        self.record.status = 101
        self.exchange.tunnelStarted()
        self.cancelTimers()
        self.endLease()
        self.upstream = nil
        upstream.detach()
        downstream.writeAndFlush(.head(head))
        self.report()
        self.guardHandler?.tunnelStarted()
        joinUpgradeTunnel(
            downstream: channel, upstream: upstreamChannel, metrics: self.shared.metrics,
            direction: self.shared.direction)
    }

    /// CONNECT: opens a TCP connection to `target`; once it is up, answers `200 Connection Established` and
    /// joins both connections as a byte tunnel (opaque TCP through the outbound port, without iptables).
    private func openConnectTunnel(
        _ target: UpstreamTarget, lease: EndpointLease, service: String, on loop: any EventLoop
    ) {
        self.lease = lease
        self.target = target
        self.record.service = service
        let ticket = self.ticket
        let bound = NIOLoopBound(self, eventLoop: loop)
        dialTunnel(target, on: loop, metrics: self.shared.metrics, direction: self.shared.direction)
            .whenComplete { result in
                let handler = bound.value
                guard handler.ticket == ticket, handler.exchange.phase == .forwarding, handler.downstream != nil else {
                    if case .success(let upstream) = result {
                        upstream.close()
                    }
                    return
                }
                switch result {
                case .success(let upstream):
                    handler.connectTunnelUp(upstream)
                case .failure:
                    handler.lease?.record(.connectFailure)
                    handler.respond(status: 503, reason: .upstreamConnectFailure)
                }
            }
    }

    private func connectTunnelUp(_ upstream: TunnelHandler) {
        guard let channel = self.downstream?.channel else {
            upstream.close()
            return
        }
        self.record.status = 200
        self.exchange.tunnelStarted()
        self.cancelTimers()
        self.endLease()
        self.report()
        self.guardHandler?.tunnelStarted()
        joinConnectTunnel(
            downstream: channel, upstream: upstream, metrics: self.shared.metrics,
            direction: self.shared.direction)
    }

    // MARK: Responses

    /// Answers the current request from the proxy itself (`DownstreamResponse.Local`).
    private func respond(status: Int, reason: ProxyReason, location: String? = nil) {
        guard let downstream = self.downstream else {
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
        downstream.write(.head(answer.head))
        if let body = answer.body {
            self.record.responseBytes += body.utf8.count
            downstream.write(.body(.byteBuffer(downstream.allocator.buffer(string: body))))
        }
        self.finish(.end(answer.trailers))
    }

    /// Reports the request (metrics, access log, span).
    private func report() {
        self.record.report(
            to: self.shared, head: self.requestHead, forwarded: self.planBox?.plan.head, target: self.target,
            span: self.span, isHTTP2: self.isHTTP2)
        self.span = nil
    }

    /// Writes the response end, records the request, and returns to idle (or drains the request body).
    private func finish(_ end: HTTPServerResponsePart) {
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
            self.downstream?.closeAfter(end)
        } else {
            // Flush now: the upstream's read-complete (which flushes) may never come after its release.
            self.downstream?.writeAndFlush(end)
        }
        if finish.requestDone {
            // Nothing of this request is needed any more: an idle keep-alive connection holds no header storage.
            self.requestHead = nil
            self.serveWaitingParts()
        }
        self.resumeReads()
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
        self.downstream?.close()
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
