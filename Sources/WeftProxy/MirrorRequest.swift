import NIOCore
import NIOHTTP1

/// A mirrored copy of one request (fire and forget): it takes its own upstream stream from the pool, gets
/// every request part the original gets, and throws the response away. It never affects the original: parts
/// that arrive before it is connected wait in a bounded buffer, and a mirror that falls behind (buffer full,
/// upstream not writable) or fails is simply dropped.
final class MirrorRequest: UpstreamRequester, UpstreamDelegate {
    private let pool: UpstreamPool
    private let bufferLimit: Int
    private var lease: EndpointLease?
    private var pending: [HTTPClientRequestPart] = []
    private var pendingBytes = 0
    private var upstream: UpstreamHandler?
    private var requestEnded = false
    private var dropped = false
    /// Keeps the mirror alive until its exchange ends (the pool and the upstream hold it weakly).
    private var keepAlive: MirrorRequest?

    private init(pool: UpstreamPool, bufferLimit: Int, lease: EndpointLease) {
        self.pool = pool
        self.bufferLimit = bufferLimit
        self.lease = lease
    }

    /// Starts mirroring `plan`'s request.
    static func start(_ plan: MirrorPlan, pool: UpstreamPool, bufferLimit: Int) -> MirrorRequest {
        let mirror = MirrorRequest(pool: pool, bufferLimit: bufferLimit, lease: plan.lease)
        mirror.keepAlive = mirror
        mirror.pending.append(.head(plan.head))
        pool.acquire(plan.target, for: mirror, ticket: 0)
        return mirror
    }

    var isWritable: Bool { true }

    /// The original request's next part.
    func send(_ part: HTTPClientRequestPart) {
        guard !self.dropped else {
            return
        }
        if case .end = part {
            self.requestEnded = true
        }
        if let upstream = self.upstream {
            guard upstream.isWritable || self.requestEnded else {
                self.drop()
                return
            }
            upstream.send(part)
            return
        }
        if case .body(.byteBuffer(let buffer)) = part {
            self.pendingBytes += buffer.readableBytes
            if self.pendingBytes > self.bufferLimit {
                self.drop()
                return
            }
        }
        self.pending.append(part)
    }

    func flush() {
        self.upstream?.flush()
    }

    /// The original request stopped before its end (its client left): a half-sent mirror is dropped.
    func abandon() {
        if !self.requestEnded {
            self.drop()
        }
    }

    private func drop() {
        guard !self.dropped else {
            return
        }
        self.dropped = true
        self.pending.removeAll()
        if let upstream = self.upstream {
            self.upstream = nil
            upstream.detach()
            upstream.close()
        }
        self.done()
    }

    private func done() {
        self.lease?.end()
        self.lease = nil
        self.keepAlive = nil
    }

    func upstreamAcquired(_ stream: UpstreamHandler, ticket: Int) {
        guard !self.dropped else {
            self.pool.release(stream, reusable: true)
            return
        }
        self.upstream = stream
        stream.attach(self)
        for part in self.pending {
            stream.send(part)
        }
        self.pending.removeAll()
        stream.flush()
    }

    func upstreamUnavailable(_ reason: ProxyReason, ticket: Int) {
        if reason == .upstreamConnectFailure {
            self.lease?.record(.connectFailure)
        }
        self.dropped = true
        self.done()
    }

    func upstreamRead(_ part: HTTPClientResponsePart, from upstream: UpstreamHandler) {
        switch part {
        case .head(let head):
            self.lease?.record(.status(Int(head.status.code)))
        case .body:
            break
        case .end:
            self.upstream = nil
            self.pool.release(upstream, reusable: self.requestEnded)
            self.done()
        }
    }

    func upstreamClosed(_ upstream: UpstreamHandler) {
        self.upstream = nil
        self.dropped = true
        self.done()
    }

    func flushDownstream() {}

    func resumeReads() {}
}

@available(*, unavailable)
extension MirrorRequest: Sendable {}
