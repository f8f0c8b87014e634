import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import ProxyConfig

/// The first handler of every downstream connection. It detects the protocol from the first bytes, builds
/// the rest of the pipeline, and for HTTP/1.1 stays in front of the decoder to enforce the header-read
/// timeout:
///
/// - an HTTP/2 connection preface → h2c (`HTTP2ServerConnection`: one `ProxyServerHandler` per stream);
/// - a TLS ClientHello (`0x16`) → inbound: per the port's mTLS mode (`InboundTLSPolicy`): terminated on a
///   STRICT or PERMISSIVE port (then a new guard detects again inside, knowing the peer's identity), opaque TCP
///   to the app on a DISABLE port; outbound: closed (no SNI routing yet);
/// - plaintext on a STRICT port → closed (`weft_proxy_tls_refused_total{reason="plaintext"}`);
/// - anything else → HTTP/1.1;
/// - an inbound `tcp` port → opaque TCP at once, and a `detect` port that stays silent for
///   `ProxyLimits.detectTimeout` → opaque TCP (server-first protocols such as MySQL wait for the server; they
///   stall for that long, not Linkerd's 10 s).
final class DownstreamGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum State {
        case detecting
        case http1
        /// HTTP/1.1, idle between two requests: the HTTP handlers are on their way out (the decoder leaves on a
        /// later tick); bytes that arrive meanwhile wait in `buffered`.
        case shedding
        /// HTTP/1.1, idle between two requests with only this guard left; the next byte brings the handlers back.
        case dormant
        case done
    }

    private static let http2Preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    private let shared: ProxyListenerContext
    private var state = State.detecting
    private var buffered: ByteBuffer?
    private var timer: Scheduled<Void>?
    /// When the current request head must be complete (HTTP/1.1). The header timer is lazy: it is scheduled
    /// once and, when it fires early (the deadline moved), rescheduled, so a request costs no timer work.
    private var headerDeadline: NIODeadline?
    /// When a keep-alive connection with no request in flight (and no byte of the next one) closes. Shares the
    /// lazy timer with the header deadline.
    private var idleDeadline: NIODeadline?
    /// When the scheduled `timer` fires (header or idle timer; nil while detecting).
    private var timerDue: NIODeadline?
    private var requestInProgress = false
    /// The HTTP/1.1 decoder behind this guard, while it is there: it knows when it sits between two requests.
    private var decoder: HTTP1RequestDecoder?
    /// When an idle keep-alive connection sheds its HTTP handlers (`ProxyLimits.dormantAfter`): about 3 KiB of
    /// decoder, encoder and request handler that an idle connection does not need. Shares the lazy timer.
    private var dormantDeadline: NIODeadline?

    private var context: ChannelHandlerContext?
    /// The peer's verified identity when this guard runs inside a terminated mTLS connection.
    private let peer: PeerIdentity?

    init(_ shared: ProxyListenerContext, peer: PeerIdentity? = nil) {
        self.shared = shared
        self.peer = peer
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if self.peer != nil, context.channel.isActive {
            // Added after the TLS handshake, on a live connection: no channelActive will come.
            self.start(context: context)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    /// The inbound port this connection serves: the one of its original destination when captured, else the
    /// first one of the config (explicit mode).
    private var inboundPort: InboundPort? {
        guard self.shared.direction == .inbound else { return nil }
        return self.shared.store.current?.config.inboundPort(captured: self.shared.captured)
    }

    func channelActive(context: ChannelHandlerContext) {
        context.fireChannelActive()
        self.start(context: context)
    }

    private func start(context: ChannelHandlerContext) {
        if self.shared.direction == .outbound, let captured = self.shared.captured,
            let state = self.shared.store.current
        {
            let runtime = self.shared.runtimes.runtime(for: state, on: context.eventLoop) ?? ClusterRuntime(state)
            let route = state.decideCaptured(captured, runtime: runtime, remoteAddress: context.channel.remoteAddress)
            switch route {
            case .http:
                break
            case .tcp, .passthrough, .refuse:
                self.becomeOutboundTCP(context: context, route: route)
                return
            }
        }
        let inbound = self.inboundPort
        // A port that may terminate TLS first looks at the client's bytes (inside TLS, or DISABLE: at once).
        let waitsForTLS = self.peer == nil && InboundTLSPolicy.waitsForFirstBytes(inbound?.tls ?? .disable)
        if inbound?.protocol == .tcp, let inbound, !waitsForTLS {
            self.becomeTCP(context: context, appPort: inbound.appPort)
            return
        }
        // A silent client is opaque TCP on a `detect` (or waiting `tcp`) port, unless STRICT wants its TLS first.
        let silentToTCP =
            (inbound?.protocol == .detect || inbound?.protocol == .tcp) && (self.peer != nil || inbound?.tls != .strict)
        let timeout = silentToTCP ? self.shared.limits.detectTimeout : self.shared.limits.headerTimeout
        self.timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in
            guard self.state == .detecting, self.buffered == nil else {
                return
            }
            if silentToTCP, let inbound {
                self.becomeTCP(context: context, appPort: inbound.appPort)
            } else {
                context.close(promise: nil)
            }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.state {
        case .detecting:
            self.hold(data)
            self.detect(context: context)
        case .http1:
            self.forwardHTTP1(context: context, data: data)
        case .shedding:
            self.hold(data)
        case .dormant:
            self.wake(context: context, data: data)
        case .done:
            context.fireChannelRead(data)
        }
    }

    /// Keeps read bytes in `buffered` until the handlers that take them are in place.
    private func hold(_ data: NIOAny) {
        var bytes = self.unwrapInboundIn(data)
        if var buffered = self.buffered {
            buffered.writeBuffer(&bytes)
            self.buffered = buffered
        } else {
            self.buffered = bytes
        }
    }

    private func detect(context: ChannelHandlerContext) {
        guard let buffered = self.buffered, let first = buffered.readableBytesView.first else {
            return
        }
        if self.peer == nil, let inbound = self.inboundPort {
            let action = InboundTLSPolicy.action(
                mode: inbound.tls, startsWithTLS: first == 0x16, hasCertificate: self.shared.meshTLS?.contexts != nil)
            switch action {
            case .terminate:
                self.becomeTLS(context: context)
                return
            case .refuse(let reason):
                self.state = .done
                _ = self.takeBuffered()
                self.shared.metrics.recordTLSRefused(self.shared.direction, reason: reason)
                context.close(promise: nil)
                return
            case .plaintext:
                break
            }
        }
        if first == 0x16 {
            if let inbound = self.inboundPort {
                self.becomeTCP(context: context, appPort: inbound.appPort)
            } else if let captured = self.shared.captured, let state = self.shared.store.current,
                let service = state.capturedService(captured)
            {
                // The app's own TLS to a mesh HTTP service: opaque TCP to the service's backends.
                let runtime = self.shared.runtimes.runtime(for: state, on: context.eventLoop) ?? ClusterRuntime(state)
                let route = state.decideCapturedTCP(
                    service, runtime: runtime, remoteAddress: context.channel.remoteAddress)
                self.becomeOutboundTCP(context: context, route: route)
            } else {
                self.shared.metrics.recordTCPRejected(self.shared.direction)
                context.close(promise: nil)
            }
            return
        }
        let view = buffered.readableBytesView
        let compared = min(view.count, Self.http2Preface.count)
        if view.prefix(compared).elementsEqual(Self.http2Preface.prefix(compared)) {
            if compared == Self.http2Preface.count {
                self.becomeHTTP2(context: context)
            }
            return
        }
        if self.inboundPort?.protocol == .tcp {
            self.becomeTCP(context: context, appPort: self.inboundPort?.appPort ?? 0)
            return
        }
        self.becomeHTTP1(context: context)
    }

    private func takeBuffered() -> ByteBuffer? {
        self.timer?.cancel()
        self.timer = nil
        let buffered = self.buffered
        self.buffered = nil
        return buffered
    }

    private func becomeHTTP1(context: ChannelHandlerContext) {
        self.state = .http1
        let buffered = self.takeBuffered()
        guard self.addHTTP1Handlers(context: context) else {
            return
        }
        self.armHeaderTimer(context: context)
        if let buffered {
            context.fireChannelRead(self.wrapInboundOut(buffered))
            context.fireChannelReadComplete()
        }
    }

    /// The HTTP/1.1 handlers behind this guard (closes the connection if they cannot be added).
    private func addHTTP1Handlers(context: ChannelHandlerContext) -> Bool {
        do {
            let pipeline = context.pipeline.syncOperations
            let decoder = HTTP1RequestDecoder(limits: self.shared.limits.decoderLimits)
            try pipeline.addHandlers(
                [
                    HTTP1ResponseEncoder(), decoder,
                    ProxyServerHandler(self.shared, guardHandler: self, peer: self.peer),
                ], position: .after(self))
            self.decoder = decoder
            return true
        } catch {
            context.close(promise: nil)
            return false
        }
    }

    /// Bytes for the HTTP/1.1 decoder: the first byte of a request starts its header deadline.
    private func forwardHTTP1(context: ChannelHandlerContext, data: NIOAny) {
        if !self.requestInProgress, self.headerDeadline == nil {
            self.idleDeadline = nil
            self.dormantDeadline = nil
            self.armHeaderTimer(context: context)
        }
        context.fireChannelRead(data)
    }

    /// An idle keep-alive connection whose decoder sits between two requests drops its HTTP handlers (request
    /// handler, encoder, decoder); this guard keeps the idle timeout and brings them back with the next byte.
    /// Nothing is lost: no byte of a next request has arrived.
    private func shed(context: ChannelHandlerContext) {
        guard self.state == .http1, self.atBoundary, !self.requestInProgress, context.channel.isActive else {
            return
        }
        let pipeline = context.pipeline.syncOperations
        guard let server = try? pipeline.context(handlerType: ProxyServerHandler.self),
            let encoder = try? pipeline.context(handlerType: HTTP1ResponseEncoder.self),
            let decoder = try? pipeline.context(handlerType: HTTP1RequestDecoder.self)
        else {
            return
        }
        self.state = .shedding
        self.decoder = nil
        pipeline.removeHandler(context: server, promise: nil)
        pipeline.removeHandler(context: encoder, promise: nil)
        let removed = context.eventLoop.makePromise(of: Void.self)
        pipeline.removeHandler(context: decoder, promise: removed)
        removed.futureResult.assumeIsolated().whenComplete { [self] result in
            guard self.state == .shedding else {
                return
            }
            guard case .success = result, context.channel.isActive else {
                context.close(promise: nil)
                return
            }
            self.state = .dormant
            self.shared.metrics.recordDormant(self.shared.direction)
            if let buffered = self.buffered {
                self.buffered = nil
                self.wake(context: context, data: self.wrapInboundOut(buffered))
                context.fireChannelReadComplete()
            }
        }
    }

    /// The first bytes after a dormant spell: the HTTP/1.1 handlers come back, and the bytes go to them.
    private func wake(context: ChannelHandlerContext, data: NIOAny) {
        self.state = .http1
        guard self.addHTTP1Handlers(context: context) else {
            return
        }
        self.forwardHTTP1(context: context, data: data)
    }

    private func becomeHTTP2(context: ChannelHandlerContext) {
        self.state = .done
        let buffered = self.takeBuffered()
        let shared = self.shared
        let peer = self.peer
        do {
            var connection = NIOHTTP2Handler.ConnectionConfiguration()
            connection.initialSettings = [
                HTTP2Setting(parameter: .maxConcurrentStreams, value: 1000),
                HTTP2Setting(parameter: .initialWindowSize, value: HTTP2ServerConnection.streamWindow),
                HTTP2Setting(parameter: .maxHeaderListSize, value: shared.limits.maxHeaderBytes),
            ]
            // Requests' header blocks are checked by `HTTP2ServerConnection` (`HTTP2RequestBlock`), which also builds
            // the response blocks, from heads an upstream codec parsed or validated, or the proxy's own.
            connection.headerBlockValidation = .disabled
            try context.pipeline.syncOperations.addHandler(FlushCoalescingHandler(), position: .first)
            try context.pipeline.syncOperations.addHandlers(
                NIOHTTP2Handler(mode: .server, connectionConfiguration: connection),
                HTTP2ServerConnection(shared, peer: peer))
        } catch {
            context.close(promise: nil)
            return
        }
        if let buffered {
            context.fireChannelRead(self.wrapInboundOut(buffered))
            context.fireChannelReadComplete()
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    /// Terminates mTLS (inbound): the TLS handler goes in behind this guard with the bytes it holds, and an
    /// `InboundTLSHandler` that starts a new guard, with the peer's identity, once the handshake completes.
    private func becomeTLS(context: ChannelHandlerContext) {
        self.state = .done
        let buffered = self.takeBuffered()
        guard let contexts = self.shared.meshTLS?.contexts else {
            self.shared.metrics.recordTLSRefused(self.shared.direction, reason: "no_certificate")
            context.close(promise: nil)
            return
        }
        let handshake = InboundTLSHandler(self.shared)
        let tls = MeshTLS.serverHandler(contexts) { handshake.verified($0) }
        do {
            try context.pipeline.syncOperations.addHandler(handshake, position: .after(self))
            try context.pipeline.syncOperations.addHandler(tls, position: .after(self))
        } catch {
            context.close(promise: nil)
            return
        }
        if let buffered {
            context.fireChannelRead(self.wrapInboundOut(buffered))
            context.fireChannelReadComplete()
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    /// Opaque TCP to the app on `127.0.0.1:appPort` (inbound), if the port's authorization allows the peer.
    private func becomeTCP(context: ChannelHandlerContext, appPort: Int) {
        self.state = .done
        let buffered = self.takeBuffered()
        let metrics = self.shared.metrics
        let direction = self.shared.direction
        if let inbound = self.inboundPort, !InboundTCPAuthorization.allows(inbound, peer: self.peer) {
            metrics.recordRBACDenied(direction, protocol: "tcp")
            context.close(promise: nil)
            return
        }
        metrics.recordTCPConnection(direction)
        let downstream = TunnelHandler { metrics.recordTunnelBytes(direction, received: $0) }
        do {
            try context.pipeline.syncOperations.addHandler(downstream, position: .after(self))
        } catch {
            context.close(promise: nil)
            return
        }
        if let buffered {
            context.fireChannelRead(self.wrapInboundOut(buffered))
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        connectTunnel(from: downstream, on: context.eventLoop, host: "127.0.0.1", port: appPort) {
            metrics.recordTunnelBytes(direction, sent: $0)
        }
    }

    /// Opaque TCP for a captured outbound connection (a TCP service, a mesh endpoint by pod IP, or passthrough to
    /// its original destination); `refuse` closes it.
    private func becomeOutboundTCP(context: ChannelHandlerContext, route: CapturedOutbound) {
        self.state = .done
        let buffered = self.takeBuffered()
        let metrics = self.shared.metrics
        let direction = self.shared.direction
        guard let (target, lease) = route.tunnel else {
            metrics.recordTCPRejected(direction)
            context.close(promise: nil)
            return
        }
        metrics.recordTCPConnection(direction)
        let downstream = TunnelHandler { metrics.recordTunnelBytes(direction, received: $0) }
        do {
            try context.pipeline.syncOperations.addHandler(downstream, position: .after(self))
        } catch {
            lease?.end()
            context.close(promise: nil)
            return
        }
        if let buffered {
            context.fireChannelRead(self.wrapInboundOut(buffered))
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        connectCapturedTunnel(
            from: downstream, on: context.eventLoop, target: target, lease: lease, meshTLS: self.shared.meshTLS
        ) { metrics.recordTunnelBytes(direction, sent: $0) }
    }

    private func armHeaderTimer(context: ChannelHandlerContext) {
        let deadline = NIODeadline.now() + self.shared.limits.headerTimeout
        self.headerDeadline = deadline
        self.ensureTimer(by: deadline, context: context)
    }

    /// Makes sure the timer fires no later than `deadline` (a timer already due earlier stays: it reschedules
    /// itself when it finds nothing due yet).
    private func ensureTimer(by deadline: NIODeadline, context: ChannelHandlerContext) {
        if self.timer != nil, let due = self.timerDue, due <= deadline {
            return
        }
        self.timer?.cancel()
        self.scheduleHeaderTimer(at: deadline, context: context)
    }

    /// Schedules the connection's one timer; when it fires it acts on whichever deadline is due (a head that did
    /// not arrive in time: 408; an idle keep-alive connection: close) or sleeps until the next one.
    private func scheduleHeaderTimer(at deadline: NIODeadline, context: ChannelHandlerContext) {
        self.timerDue = deadline
        self.timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            self.timer = nil
            self.timerDue = nil
            guard self.state == .http1 || self.state == .dormant || self.state == .shedding,
                !self.requestInProgress
            else {
                return
            }
            let now = NIODeadline.now()
            if let header = self.headerDeadline {
                if header > now {
                    self.scheduleHeaderTimer(at: header, context: context)
                } else {
                    self.headerTimedOut(context: context)
                }
            } else if let dormant = self.dormantDeadline {
                if dormant > now {
                    self.scheduleHeaderTimer(at: dormant, context: context)
                } else {
                    self.dormantDeadline = nil
                    self.shed(context: context)
                    if let idle = self.idleDeadline {
                        self.scheduleHeaderTimer(at: idle, context: context)
                    }
                }
            } else if let idle = self.idleDeadline {
                if idle > now {
                    self.scheduleHeaderTimer(at: idle, context: context)
                } else {
                    // Nothing in flight and nothing arriving: close quietly (RFC 9112 §9.5).
                    context.close(promise: nil)
                }
            }
        }
    }

    private func headerTimedOut(context: ChannelHandlerContext) {
        self.shared.metrics.record(
            self.shared.direction, status: 408, reason: .headerTimeout, started: .now(), requestBytes: 0,
            responseBytes: 0)
        let body = "header_timeout\n"
        let response =
            "HTTP/1.1 408 Request Timeout\r\nx-weft-reason: header_timeout\r\ncontent-type: text/plain; "
            + "charset=utf-8\r\ncontent-length: \(body.utf8.count)\r\nconnection: close\r\n\r\n\(body)"
        context.writeAndFlush(self.wrapOutboundOut(context.channel.allocator.buffer(string: response)))
            .assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
    }

    /// A request head arrived (HTTP/1.1): the header timer stops until the next request's first byte.
    func headReceived() {
        self.requestInProgress = true
        self.headerDeadline = nil
        self.idleDeadline = nil
        self.dormantDeadline = nil
    }

    /// The decoder sits between two requests with no byte of the next one read, so that it may leave without
    /// losing one.
    private var atBoundary: Bool { self.decoder?.isIdle ?? false }

    /// The request and its response are complete: the idle timeout runs until the next request's first byte,
    /// and a `reusable` connection whose decoder is between two requests goes dormant after
    /// `ProxyLimits.dormantAfter`.
    func requestDone(reusable: Bool) {
        self.requestInProgress = false
        guard self.state == .http1, let context = self.context else {
            return
        }
        let now = NIODeadline.now()
        let deadline = now + self.shared.limits.idleTimeout
        self.idleDeadline = deadline
        if reusable, self.atBoundary, self.shared.limits.dormantAfter > .zero {
            let dormant = now + self.shared.limits.dormantAfter
            self.dormantDeadline = dormant
            self.ensureTimer(by: dormant, context: context)
        } else {
            self.dormantDeadline = nil
            self.ensureTimer(by: deadline, context: context)
        }
    }

    /// The response ended before the request was complete, or the head was malformed: no timer either way.
    func stopTimer() {
        self.headerDeadline = nil
        self.idleDeadline = nil
        self.dormantDeadline = nil
        self.timer?.cancel()
        self.timer = nil
    }

    /// The connection became a tunnel (WebSocket): no more HTTP timers.
    func tunnelStarted() {
        self.state = .done
        self.timer?.cancel()
        self.timer = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.timer?.cancel()
        self.timer = nil
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent,
            self.state == .detecting || self.state == .dormant || self.state == .shedding
        {
            // Draining: a connection that never said what it speaks, or an idle dormant one, closes (HTTP/1.1
            // and HTTP/2 handle it themselves further down the pipeline).
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}

@available(*, unavailable)
extension DownstreamGuard: Sendable {}

/// Connects to `host:port` on `loop` and joins the connection to `downstream` as a byte tunnel; closes the
/// downstream when the connection fails.
func connectTunnel(
    from downstream: TunnelHandler, on loop: any EventLoop, host: String, port: Int,
    onBytes: @escaping (Int) -> Void
) {
    let bound = NIOLoopBound(downstream, eventLoop: loop)
    let onBytesBound = NIOLoopBound(onBytes, eventLoop: loop)
    ClientBootstrap(group: loop)
        .channelOption(.tcpOption(.tcp_nodelay), value: 1)
        .connectTimeout(.seconds(1))
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(TunnelHandler(onBytes: onBytesBound.value))
            }
        }
        .connect(host: host, port: port)
        .whenComplete { result in
            switch result {
            case .success(let channel):
                if let upstream = try? channel.pipeline.syncOperations.handler(type: TunnelHandler.self) {
                    TunnelHandler.join(bound.value, upstream)
                } else {
                    channel.close(promise: nil)
                    bound.value.close()
                }
            case .failure:
                bound.value.close()
            }
        }
}
