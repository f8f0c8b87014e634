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

    private enum Phase {
        case idle
        /// Forwarding the request upstream (or waiting for its delay, backoff or connection).
        case forwarding
        /// The response is done (local or upstream); discarding the rest of the request body.
        case draining
        /// The connection became a byte tunnel (WebSocket, CONNECT): this handler is on its way out.
        case tunnel
    }

    private let shared: ProxyListenerContext
    private let isHTTP2: Bool
    private var context: ChannelHandlerContext?
    private var phase = Phase.idle
    /// Incremented per request and per try: callbacks of an older one (timers, connects) are ignored.
    private var ticket = 0
    private var keepAlive = true
    /// The last response went out with the connection closing: nothing read after it is a request to serve (a
    /// pipelined request behind a refused one must not be routed, let alone dial an upstream).
    private var closing = false
    /// HTTP/1.1 request parts that arrived while an earlier request was still being answered (pipelining), served
    /// in order once it is; nil when none wait. While any wait, reads are held, so at most a read's worth queues up.
    /// (NIO's `HTTPServerPipelineHandler` did this by holding reads during every response, which took the socket
    /// out of epoll and put it back on every request: two `epoll_ctl` calls each.)
    private var pipelined: CircularBuffer<HTTPServerRequestPart>?
    private var servingPipelined = false
    /// Bytes read and dropped since the closing answer (see `lingeringClose`).
    private var lingeredBytes = 0
    /// How long, and for how many bytes, a closing connection keeps reading after its answer before it closes.
    static let lingerTime = TimeAmount.seconds(2)
    static let lingerBytes = 1 << 20
    private var version = HTTPVersion.http1_1
    private var requestHead: HTTPRequestHead?
    private var requestEnded = false
    private var responseHeadSent = false
    private var isGRPC = false
    private var isUpgrade = false
    /// Body parts go upstream (false: the request is framed without a body, e.g. TRACE).
    private var forwardsBody = true
    /// The request body is chunked (its wire length is not its byte count).
    private var chunkedBody = false
    /// `Expect: 100-continue`; and whether the proxy answered `100 Continue`.
    private var expectsContinue = false
    private var continueSent = false
    /// An HTTP/2 GET, HEAD or DELETE without `content-length`, routed once the next part (or the end of this
    /// read) shows whether a body follows, so that it is framed right for an HTTP/1.1 upstream.
    private var deferredHead: HTTPRequestHead?
    private var started = NIODeadline.now()
    private var status = 0
    private var reason = ProxyReason.upstream
    private var requestBytes = 0
    private var responseBytes = 0
    private var tries = 0
    /// The destination service (metrics label): the cluster's service outbound, `inbound` inbound.
    private var service = "unknown"
    /// The request's forwarding plan, boxed: inline it made every connection (idle ones included) about 700
    /// bytes larger; boxed it costs one allocation per forwarded request.
    private var planBox: ForwardPlanBox?
    private var target: UpstreamTarget?
    /// The current try's hold on its endpoint (outbound), ended when the try is over.
    private var lease: EndpointLease?
    private var retry: RetryStateMachine?
    /// The request's body parts, kept for retries (nil: no retry possible any more).
    private var retained: [HTTPClientRequestPart]?
    private var retainedBytes = 0
    /// What `retained` and `pending` body parts hold of the process-wide buffer budget (`OverloadManager`).
    private var retainedReservation = BufferReservation()
    private var pendingReservation = BufferReservation()
    /// Stalled request bodies (`ProxyLimits.bodyTimeout`).
    private var bodyStall = BodyStallStateMachine()
    private var bodyTimer: Scheduled<Void>?
    /// Balancer state for an event loop outside the listener's group (not expected; per connection then).
    private var connectionRuntime: ClusterRuntime?
    private var connectionPool: UpstreamPool?
    private var pending: [HTTPClientRequestPart] = []
    private var requestTimer: Scheduled<Void>?
    private var tryTimer: Scheduled<Void>?
    private var delayTimer: Scheduled<Void>?
    private var waiter: Int?
    private var upstream: UpstreamHandler?
    /// The current upstream has the request head (what `pending` waits for).
    private var upstreamReady = false
    /// The current upstream may take another request after this one.
    private var upstreamReusable = false
    private var readPending = false
    private var mirror: MirrorRequest?
    private var span: ProxySpan?
    /// A parse error was answered (the decoder may report the same input twice).
    private var parseErrorAnswered = false
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
        self.isHTTP2 = isHTTP2
        self.guardHandler = guardHandler
        self.peer = peer
    }

    var isWritable: Bool { self.context?.channel.isWritable ?? false }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        self.stopBodyTimer()
        self.releaseBuffers()
    }

    // MARK: Downstream events

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.closing else {
            if case .body(let buffer) = self.unwrapInboundIn(data) {
                self.lingeredBytes += buffer.readableBytes
            }
            if self.lingeredBytes > Self.lingerBytes {
                context.close(promise: nil)
            }
            return
        }
        let part = self.unwrapInboundIn(data)
        if !self.isHTTP2, self.mustWait(part) {
            self.pipelined = self.pipelined ?? CircularBuffer(initialCapacity: 4)
            self.pipelined?.append(part)
            return
        }
        self.serve(part, context: context)
    }

    /// Whether `part` must wait behind the request being answered (HTTP/1.1 pipelining): a head while a response
    /// is in flight, and whatever follows a waiting part.
    private func mustWait(_ part: HTTPServerRequestPart) -> Bool {
        if self.pipelined != nil {
            return true
        }
        if case .head = part {
            return self.phase != .idle
        }
        return false
    }

    /// Serves the parts that waited, in order, as far as the request being answered allows.
    private func servePipelined(context: ChannelHandlerContext) {
        guard !self.servingPipelined else {
            // Called from a part served below (its answer came at once): the loop goes on from there.
            return
        }
        self.servingPipelined = true
        defer { self.servingPipelined = false }
        var served = false
        while !self.closing, let part = self.pipelined?.first {
            if case .head = part, self.phase != .idle {
                break
            }
            self.pipelined?.removeFirst()
            if self.pipelined?.isEmpty ?? false {
                self.pipelined = nil
            }
            self.serve(part, context: context)
            served = true
        }
        if served {
            // What the end of a read does: no read-complete follows parts served from the queue.
            self.partsServed(context: context)
        }
        if self.pipelined == nil {
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
            self.requestBytes += buffer.readableBytes
            if self.forwardsBody {
                self.requestPart(.body(.byteBuffer(buffer)))
            }
        case .end(let trailers):
            self.routeDeferredHead(bodyFollows: false, context: context)
            self.requestEnded = true
            self.guardHandler?.requestEnded(bodyBytes: self.chunkedBody ? nil : self.requestBytes)
            self.stopBodyTimer()
            switch self.phase {
            case .forwarding:
                self.requestPart(.end(trailers))
            case .draining:
                self.phase = .idle
                self.requestHead = nil
                guard self.keepAlive else {
                    // Draining started after the answer went out (`ChannelShouldQuiesceEvent`): close now.
                    context.close(promise: nil)
                    return
                }
                self.guardHandler?.requestDone(reusable: true)
                self.servePipelined(context: context)
            case .idle, .tunnel:
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
        self.pipelined = nil
        self.keepAlive = false
        if self.phase == .idle {
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
        if self.bodyStall.readComplete(waiting: self.waitsForBody) == .arm {
            self.armBodyTimer(context: context)
        }
        if self.upstreamReady {
            self.upstream?.flush()
        }
        self.mirror?.flush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if self.phase == .forwarding, !self.responseHeadSent, self.planBox != nil {
            // The client left before any answer: record it (Envoy's and nginx's 499).
            self.status = 499
            self.reason = .downstreamReset
            self.record()
        }
        self.deferredHead = nil
        self.cancelTimers()
        self.cancelWait()
        self.endLease()
        self.ticket += 1
        self.phase = .idle
        self.closeUpstream()
        self.mirror?.abandon()
        self.mirror = nil
        self.stopBodyTimer()
        self.releaseBuffers()
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
        self.pipelined != nil
            || (self.phase == .forwarding && !self.requestEnded
                && (!self.upstreamReady || !(self.upstream?.isWritable ?? false)))
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
        self.keepAlive = self.isHTTP2 || head.isKeepAlive
        self.version = head.version
        self.requestHead = head
        self.requestEnded = false
        self.responseHeadSent = false
        self.isGRPC = head.isGRPC
        let envelope = RequestEnvelope(
            head, isHTTP2: self.isHTTP2, bodyFollows: bodyFollows, upgradeProtocols: self.shared.limits.upgradeProtocols
        )
        self.isUpgrade = envelope.upgrade != nil
        if envelope.refusedUpgrade {
            self.keepAlive = false
        }
        self.forwardsBody = envelope.forwardsBody
        self.chunkedBody = if case .chunked = envelope.framing { true } else { false }
        self.expectsContinue = envelope.expectsContinue
        self.continueSent = false
        self.started = .now()
        self.status = 0
        self.reason = .upstream
        self.requestBytes = 0
        self.responseBytes = 0
        self.tries = 0
        self.upgradeResponse = nil
        self.service = self.shared.direction == .inbound ? "inbound" : "unknown"
        self.retry = nil
        self.dropRetained()
        self.retainedBytes = 0
        self.target = nil
        self.clearPending()
        self.stopBodyTimer()
        self.phase = .forwarding
        if !self.shared.limits.admits(head.headers) {
            self.respond(status: 431, reason: .headerLimits)
            return
        }
        if case .invalid(let status) = envelope.framing {
            // The body cannot be delimited safely: answer, and close (the rest of the bytes cannot be trusted).
            self.keepAlive = false
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
            self.service = service
        }
        if let policy = plan.retry, !self.isUpgrade {
            self.retry = RetryStateMachine(policy: policy, method: plan.head.method.rawValue)
            self.retained = []
        }
        if let mirror = plan.mirror, let pool = self.pool(on: context.eventLoop) {
            self.mirror = MirrorRequest.start(
                mirror, pool: pool, bufferLimit: self.shared.limits.mirrorBufferBytes)
        }
        self.pending.append(.head(plan.head))
        let ticket = self.ticket
        let loop = context.eventLoop.assumeIsolated()
        if let timeout = plan.timeout {
            self.requestTimer = loop.scheduleTask(in: timeout) { [self] in
                self.timedOut(ticket: ticket)
            }
        }
        if let delay = plan.delay {
            self.delayTimer = loop.scheduleTask(in: delay) { [self] in
                guard self.ticket == ticket, self.phase == .forwarding else {
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
        guard self.phase == .forwarding else {
            return
        }
        if self.retained != nil {
            if case .body(.byteBuffer(let buffer)) = part {
                self.retainedBytes += buffer.readableBytes
            }
            if self.retainedBytes > self.shared.limits.retryBufferBytes {
                self.dropRetained()
            } else if !self.retainedReservation.take(part.bufferedBytes, from: self.shared.overload) {
                // The process holds too much already: this request streams and is not retried.
                self.shared.metrics.recordOverload(self.shared.direction, limit: .bufferedBytes)
                self.dropRetained()
            } else {
                self.retained?.append(part)
            }
        }
        self.mirror?.send(part)
        if self.upstreamReady, let upstream = self.upstream {
            upstream.send(part)
        } else if self.pendingReservation.take(part.bufferedBytes, from: self.shared.overload) {
            self.pending.append(part)
        } else {
            // No upstream yet and no room to hold the body meanwhile: 503; the rest of the body is read and
            // discarded (draining), not held.
            self.shared.metrics.recordOverload(self.shared.direction, limit: .bufferedBytes)
            self.cancelWait()
            self.closeUpstream()
            self.respond(status: 503, reason: .overload)
        }
    }

    // MARK: Buffers and stalled bodies

    /// No more retries for this request: its kept parts and their share of the buffer budget go.
    private func dropRetained() {
        self.retained = nil
        self.retainedReservation.releaseAll(to: self.shared.overload)
    }

    /// The parts waiting for an upstream were sent (or dropped): their share of the buffer budget goes.
    private func clearPending() {
        // A small buffer stays for the next request's parts (one allocation less per request); a large one goes.
        self.pending.removeAll(keepingCapacity: self.pending.capacity <= 8)
        self.pendingReservation.releaseAll(to: self.shared.overload)
    }

    private func releaseBuffers() {
        self.dropRetained()
        self.clearPending()
    }

    /// The request's body is still coming: what `bodyTimeout` watches (also while draining after a response).
    private var waitsForBody: Bool {
        (self.phase == .forwarding || self.phase == .draining) && !self.requestEnded && self.requestHead != nil
    }

    private func armBodyTimer(context: ChannelHandlerContext) {
        self.bodyTimer = context.eventLoop.assumeIsolated().scheduleTask(in: self.shared.limits.bodyTimeout) {
            [self] in
            self.bodyTimer = nil
            switch self.bodyStall.timerFired(waiting: self.waitsForBody, held: self.readPending) {
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
        if self.phase == .forwarding, !self.responseHeadSent {
            self.cancelWait()
            self.closeUpstream()
            self.mirror?.abandon()
            self.mirror = nil
            self.keepAlive = false
            self.respond(status: 408, reason: .bodyTimeout)
        } else if self.phase == .forwarding {
            self.abortDownstream(reason: .bodyTimeout)
        } else {
            // Draining the body of an answered request: nothing to record, just close.
            self.releaseBuffers()
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
        self.tries += 1
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
        guard ticket == self.ticket, self.phase == .forwarding else {
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
        for part in self.pending {
            stream.send(part)
        }
        self.clearPending()
        stream.flush()
        self.resumeReads()
    }

    func upstreamUnavailable(_ reason: ProxyReason, ticket: Int) {
        guard ticket == self.ticket, self.phase == .forwarding else {
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
        guard var machine = self.retry, let retained = self.retained, let plan = self.planBox?.plan,
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
        self.clearPending()
        self.pending = [.head(plan.head)] + retained
        self.delayTimer = context.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(Int64(backoff))) {
            [self] in
            guard self.ticket == ticket, self.phase == .forwarding, let head = self.requestHead else {
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
        guard ticket == self.ticket, self.phase == .forwarding, !self.responseHeadSent else {
            return
        }
        self.lease?.record(.status(504))
        self.tryFailed(.perTryTimeout, status: 504, reason: .timeout)
    }

    // MARK: Upstream

    func upstreamRead(_ part: HTTPClientResponsePart, from upstream: UpstreamHandler) {
        guard upstream === self.upstream, self.phase == .forwarding, let context = self.context else {
            return
        }
        switch part {
        case .head(let response):
            self.upstreamHead(response, context: context)
        case .body(let buffer):
            self.responseBytes += buffer.readableBytes
            context.write(self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        case .end(let trailers):
            if let upgrade = self.upgradeResponse {
                self.upgradeResponse = nil
                self.switchToTunnel(upgrade, context: context)
                return
            }
            if !self.requestEnded {
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
        self.dropRetained()
        if self.isUpgrade, status == 101 {
            // The decoder ends the 101 response right after its head; the tunnel starts after that end.
            self.upgradeResponse = response
            return
        }
        var headers = response.headers.withoutHopByHop()
        let upstreamKeepAlive = response.isKeepAlive
        for operations in self.planBox?.plan.responseHeaders ?? [] {
            headers.apply(operations)
        }
        if !self.isHTTP2 {
            if !self.keepAlive {
                headers.add(name: "connection", value: "close")
            } else if self.version == .http1_0 {
                headers.add(name: "connection", value: "keep-alive")
            }
        }
        self.status = status
        self.responseHeadSent = true
        self.upstreamReusable = upstreamKeepAlive
        context.write(
            self.wrapOutboundOut(
                .head(HTTPResponseHead(version: self.version, status: response.status, headers: headers))),
            promise: nil)
    }

    func upstreamClosed(_ upstream: UpstreamHandler) {
        guard upstream === self.upstream else {
            return
        }
        self.upstream = nil
        self.upstreamReady = false
        self.upstreamReusable = false
        guard self.phase == .forwarding, self.planBox != nil else {
            return
        }
        if self.responseHeadSent {
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
        let reusable = self.upstreamReusable && self.requestEnded
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
        guard ticket <= self.ticket, self.phase == .forwarding, self.planBox != nil else {
            return
        }
        self.cancelWait()
        self.closeUpstream()
        self.lease?.record(.status(504))
        if self.responseHeadSent {
            self.abortDownstream(reason: .timeout)
        } else {
            self.respond(status: 504, reason: .timeout)
        }
    }

    // MARK: Tunnels (WebSocket)

    /// The upstream accepted a protocol upgrade: sends the `101` downstream, then turns both connections
    /// into a byte tunnel (the HTTP codecs leave both pipelines).
    private func switchToTunnel(_ response: HTTPResponseHead, context: ChannelHandlerContext) {
        guard let upstream = self.upstream, upstream.kind == .http1, let upstreamChannel = upstream.channel else {
            self.abortDownstream(reason: .upstreamReset)
            return
        }
        var headers = response.headers.withoutHopByHop(upgrade: response.headers.first(name: "upgrade"))
        for operations in self.planBox?.plan.responseHeaders ?? [] {
            headers.apply(operations)
        }
        self.status = 101
        self.responseHeadSent = true
        self.phase = .tunnel
        self.cancelTimers()
        self.endLease()
        self.upstream = nil
        upstream.detach()
        context.writeAndFlush(
            self.wrapOutboundOut(
                .head(HTTPResponseHead(version: self.version, status: .switchingProtocols, headers: headers))),
            promise: nil)
        self.record()
        let metrics = self.shared.metrics
        let direction = self.shared.direction
        let downstreamSide = TunnelHandler { metrics.recordTunnelBytes(direction, received: $0) }
        let upstreamSide = TunnelHandler { metrics.recordTunnelBytes(direction, sent: $0) }
        self.guardHandler?.tunnelStarted()
        do {
            let downstreamReady = try installTunnel(downstreamSide, on: context.channel)
            let upstreamReady = try installTunnel(upstreamSide, on: upstreamChannel)
            TunnelHandler.join(
                downstreamSide, upstreamSide, when: downstreamReady.and(upstreamReady).map { _ in },
                on: context.eventLoop)
            context.channel.read()
            upstreamChannel.read()
        } catch {
            upstreamChannel.close(promise: nil)
            context.close(promise: nil)
        }
    }

    /// CONNECT: opens a TCP connection to `target`; once it is up, answers `200 Connection Established` and
    /// joins both connections as a byte tunnel (opaque TCP through the outbound port, without iptables).
    private func openConnectTunnel(
        _ target: UpstreamTarget, lease: EndpointLease, service: String, context: ChannelHandlerContext
    ) {
        self.lease = lease
        self.target = target
        self.service = service
        let ticket = self.ticket
        let metrics = self.shared.metrics
        let direction = self.shared.direction
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        ClientBootstrap(group: context.eventLoop)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connectTimeout(target.connectTimeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        TunnelHandler { metrics.recordTunnelBytes(direction, sent: $0) })
                }
            }
            .connect(host: target.host, port: target.port)
            .whenComplete { result in
                let handler = bound.value
                switch result {
                case .success(let channel):
                    guard handler.ticket == ticket, handler.phase == .forwarding, let context = handler.context,
                        let upstream = try? channel.pipeline.syncOperations.handler(type: TunnelHandler.self)
                    else {
                        channel.close(promise: nil)
                        return
                    }
                    handler.connectTunnelUp(upstream, context: context)
                case .failure:
                    guard handler.ticket == ticket, handler.phase == .forwarding else {
                        return
                    }
                    handler.lease?.record(.connectFailure)
                    handler.respond(status: 503, reason: .upstreamConnectFailure)
                }
            }
    }

    private func connectTunnelUp(_ upstream: TunnelHandler, context: ChannelHandlerContext) {
        self.status = 200
        self.responseHeadSent = true
        self.phase = .tunnel
        self.cancelTimers()
        self.endLease()
        self.record()
        self.guardHandler?.tunnelStarted()
        let metrics = self.shared.metrics
        let direction = self.shared.direction
        metrics.recordTCPConnection(direction)
        let downstream = TunnelHandler { metrics.recordTunnelBytes(direction, received: $0) }
        do {
            let ready = try installTunnel(downstream, on: context.channel)
            downstream.writeRaw(
                context.channel.allocator.buffer(string: "HTTP/1.1 200 Connection Established\r\n\r\n"))
            TunnelHandler.join(downstream, upstream, when: ready, on: context.eventLoop)
            // This handler may have held a read back (the CONNECT had no end): read again, into the tunnel.
            context.channel.read()
        } catch {
            upstream.close()
            context.close(promise: nil)
        }
    }

    // MARK: Responses

    /// Answers the current request from the proxy itself, with `x-weft-reason`. A gRPC request gets a gRPC
    /// answer: status 200 with `grpc-status` and `grpc-message` trailers.
    private func respond(status: Int, reason: ProxyReason, location: String? = nil) {
        guard let context = self.context else {
            return
        }
        self.cancelWait()
        if self.expectsContinue, !self.continueSent, !self.requestEnded {
            // The client may or may not send the body it announced: the connection cannot be reused.
            self.keepAlive = false
        }
        // The upstream of a failed try is not reusable: `finish` closes it.
        self.upstreamReusable = false
        self.reason = reason
        var headers = HTTPHeaders()
        headers.add(name: "x-weft-reason", value: reason.rawValue)
        if self.isGRPC {
            self.status = 200
            headers.add(name: "content-type", value: "application/grpc")
            self.responseHeadSent = true
            context.write(
                self.wrapOutboundOut(.head(HTTPResponseHead(version: self.version, status: .ok, headers: headers))),
                promise: nil)
            var trailers = HTTPHeaders()
            trailers.add(name: "grpc-status", value: String(grpcStatus(forHTTP: status, reason: reason)))
            trailers.add(name: "grpc-message", value: "weft: \(reason.rawValue)")
            trailers.add(name: "x-weft-reason", value: reason.rawValue)
            self.finish(.end(trailers), context: context)
            return
        }
        self.status = status
        if let location {
            headers.add(name: "location", value: location)
        }
        let body = "\(reason.rawValue)\n"
        headers.add(name: "content-type", value: "text/plain; charset=utf-8")
        headers.add(name: "content-length", value: String(body.utf8.count))
        if !self.keepAlive && !self.isHTTP2 {
            headers.add(name: "connection", value: "close")
        }
        self.responseHeadSent = true
        let head = HTTPResponseHead(
            version: self.version, status: HTTPResponseStatus(statusCode: status), headers: headers)
        context.write(self.wrapOutboundOut(.head(head)), promise: nil)
        self.responseBytes += body.utf8.count
        context.write(
            self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        self.finish(.end(nil), context: context)
    }

    private func record() {
        if let span = self.span, let head = self.requestHead {
            self.span = nil
            span.end(
                method: head.method.rawValue, path: head.uri, status: self.status, reason: self.reason,
                upstream: self.target.map { "\($0.host):\($0.port)" }, cluster: self.target?.cluster, tries: self.tries)
        }
        self.shared.metrics.record(
            self.shared.direction, service: self.service, status: self.status, reason: self.reason,
            started: self.started,
            requestBytes: self.requestBytes, responseBytes: self.responseBytes)
        if let log = self.shared.accessLog, let head = self.requestHead {
            log.log(
                AccessLogEntry(
                    direction: self.shared.direction, method: head.method.rawValue,
                    authority: requestTarget(head).authority,
                    path: head.uri,
                    protocolVersion: self.isHTTP2 ? "HTTP/2" : "HTTP/\(head.version.major).\(head.version.minor)",
                    status: self.status, reason: self.reason.rawValue,
                    upstream: self.target.map { "\($0.host):\($0.port)" }, cluster: self.target?.cluster,
                    tries: self.tries, requestBytes: self.requestBytes, responseBytes: self.responseBytes,
                    durationMicros: (NIODeadline.now() - self.started).nanoseconds / 1000,
                    traceparent: head.headers.first(name: "traceparent")
                        ?? self.planBox?.plan.head.headers.first(name: "traceparent")))
        }
    }

    /// Writes the response end, records the request, and returns to idle (or drains the request body).
    private func finish(_ end: HTTPServerResponsePart, context: ChannelHandlerContext) {
        self.cancelTimers()
        self.endLease()
        self.record()
        self.planBox = nil
        self.dropRetained()
        self.clearPending()
        self.mirror = nil
        self.phase = self.requestEnded ? .idle : .draining
        if self.phase == .idle {
            self.guardHandler?.requestDone(reusable: self.keepAlive)
        }
        self.releaseUpstream()
        if self.keepAlive {
            // Flush now: the upstream's read-complete (which flushes) may never come after its release.
            context.writeAndFlush(self.wrapOutboundOut(end), promise: nil)
        } else {
            self.closing = true
            context.writeAndFlush(self.wrapOutboundOut(end)).assumeIsolated().whenComplete { _ in
                Self.lingeringClose(context)
            }
        }
        if self.phase == .idle {
            // Nothing of this request is needed any more: an idle keep-alive connection holds no header storage.
            self.requestHead = nil
            self.servePipelined(context: context)
        }
        self.resumeReads()
    }

    /// Closes a connection after its last answer the way nginx's lingering close does: the write side first
    /// (the client reads the answer, then end of stream), then everything the client still sends is read and
    /// dropped until it closes, `lingerTime` passes or `lingerBytes` arrive. Closing at once with unread bytes in
    /// the socket (the rest of a refused request, a pipelined one) makes the kernel send a reset, which can
    /// destroy the answer before the client reads it.
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
        self.reason = reason
        self.record()
        self.planBox = nil
        self.dropRetained()
        self.clearPending()
        self.phase = .draining
        self.closeUpstream()
        self.context?.close(promise: nil)
    }

    /// HTTP/1.1 that cannot be parsed (NIO's decoder reports it here): `400` (`431` for an oversized head)
    /// with `x-weft-reason`, then the connection closes. Mid-response, or for any other error, it just closes.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if self.closing, !(error is IOError) {
            // Lingering after the closing answer: the decoder's complaints about what follows are expected.
            return
        }
        guard let parserError = error as? HTTPParserError, !self.parseErrorAnswered, context.channel.isActive,
            self.phase != .tunnel, !(self.phase == .forwarding && self.responseHeadSent)
        else {
            context.close(promise: nil)
            return
        }
        self.parseErrorAnswered = true
        self.guardHandler?.stopTimer()
        self.cancelTimers()
        self.cancelWait()
        self.endLease()
        self.ticket += 1
        self.closeUpstream()
        self.planBox = nil
        self.mirror?.abandon()
        self.mirror = nil
        self.keepAlive = false
        self.requestEnded = true
        self.phase = .forwarding
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
