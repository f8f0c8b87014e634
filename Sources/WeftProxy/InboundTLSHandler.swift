import NIOCore
import NIOSSL
import NIOTLS

/// Sits behind the `NIOSSLServerHandler` of an inbound mTLS connection until the handshake completes, then
/// hands the decrypted connection to a new `DownstreamGuard` that knows the peer's verified identity (HTTP/1.1,
/// h2 by its preface, or TCP, as on a plaintext connection). A failed handshake or refused certificate closes
/// the connection, counted as `weft_proxy_tls_refused_total{reason="handshake"}`; so does a handshake that has
/// not completed within the header timeout (`--header-timeout`, the time a client has to start a request),
/// counted with `reason="handshake_timeout"`: a peer that opens TLS and stalls cannot hold a connection. A completed
/// handshake with a verified peer is counted in `weft_proxy_tls_connections_total`.
final class InboundTLSHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let shared: ProxyListenerContext
    private var peer: PeerIdentity?
    private var refused = false
    private var timeout: Scheduled<Void>?

    init(_ shared: ProxyListenerContext) {
        self.shared = shared
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        self.timeout = context.eventLoop.scheduleTask(in: self.shared.limits.headerTimeout) {
            let (handler, context) = loopBound.value
            handler.refuse(context: context, reason: "handshake_timeout")
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.timeout?.cancel()
        self.timeout = nil
    }

    /// The verification callback's result (before the handshake completes).
    func verified(_ result: Result<String, PeerIdentityError>) {
        if case .success(let identity) = result {
            self.peer = PeerIdentity(spiffeID: identity)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let tls = event as? TLSUserEvent, case .handshakeCompleted = tls else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        self.timeout?.cancel()
        self.timeout = nil
        guard let peer = self.peer else {
            self.refuse(context: context)
            return
        }
        self.shared.metrics.recordTLSAccepted(self.shared.direction)
        do {
            try context.pipeline.syncOperations.addHandler(
                DownstreamGuard(self.shared, peer: peer), position: .after(self))
        } catch {
            context.close(promise: nil)
            return
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.refuse(context: context)
    }

    private func refuse(context: ChannelHandlerContext, reason: String = "handshake") {
        if !self.refused {
            self.refused = true
            self.shared.metrics.recordTLSRefused(self.shared.direction, reason: reason)
        }
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension InboundTLSHandler: Sendable {}
