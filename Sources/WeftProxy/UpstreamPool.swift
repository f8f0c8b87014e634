import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import ProxyConfig
import ProxyCore

/// How the proxy talks to an upstream.
enum UpstreamProtocol: Hashable {
    case http1
    /// h2c prior knowledge (multiplexed).
    case http2
}

/// Where one try goes, and under which cluster's limits.
struct UpstreamTarget {
    var host: String
    var port: Int
    var protocolKind: UpstreamProtocol
    /// The cluster whose limits apply (`inbound:<port>` for the inbound side).
    var cluster: String
    var limits: ConnectionLimits
    var connectTimeout: TimeAmount
    /// The SPIFFE ID the endpoint's proxy must present: mTLS is originated (nil: plaintext).
    var identity: String? = nil

    /// The pool key: one set of connections per endpoint, protocol and expected identity.
    var key: UpstreamKey {
        UpstreamKey(protocolKind: self.protocolKind, host: self.host, port: self.port, identity: self.identity)
    }
}

/// One pool of upstream connections (a struct, not a composed string: looking a pool up allocates nothing).
struct UpstreamKey: Hashable {
    var protocolKind: UpstreamProtocol
    var host: String
    var port: Int
    var identity: String?
}

/// Adds the mTLS client handler first in an upstream pipeline when `target` expects an identity; throws (the
/// connection fails, nothing goes out in plaintext) when the proxy has no certificate.
func addMeshTLSIfNeeded(_ target: UpstreamTarget, meshTLS: MeshTLS?, to channel: any Channel) throws {
    guard let identity = target.identity else {
        return
    }
    guard let contexts = meshTLS?.contexts else {
        throw PeerIdentityError(.malformed, "no certificate to originate mTLS with")
    }
    try channel.pipeline.syncOperations.addHandler(
        try MeshTLS.clientHandler(contexts, http2: target.protocolKind == .http2, expected: identity),
        position: .first)
}

/// Who waits for an upstream stream: the pool calls back on the event loop with the stream, or with the
/// reason it cannot have one.
protocol UpstreamRequester: AnyObject {
    func upstreamAcquired(_ stream: UpstreamHandler, ticket: Int)
    func upstreamUnavailable(_ reason: ProxyReason, ticket: Int)
}

/// The upstream connections of one event loop: HTTP/1.1 keep-alive connections (one request at a time each)
/// and HTTP/2 connections (one per endpoint, multiplexed), with the clusters' circuit-breaking limits.
///
/// Limits count per event loop: `maxConnections` bounds the HTTP/1.1 connections of a cluster on this loop
/// (HTTP/2 opens one per endpoint), `maxPendingRequests` the requests waiting for a connection, and
/// `maxRequestsPerConnection` closes a connection (HTTP/1.1) or stops using it for new streams (HTTP/2) after
/// that many requests. A request over a limit is answered 503 `overflow`. Idle HTTP/1.1 connections close
/// after the cluster's `idleTimeoutMs`.
///
/// Confined to its event loop: no locks.
final class UpstreamPool {
    private struct Waiter {
        var id: Int
        var target: UpstreamTarget
        weak var requester: (any UpstreamRequester)?
        var ticket: Int
    }

    private final class ClusterState {
        var limiter: ConnectionLimiter
        var waiters: [Waiter] = []

        init(limits: ConnectionLimits) {
            self.limiter = ConnectionLimiter(limits: limits)
        }
    }

    let eventLoop: any EventLoop
    /// Bounds on upstream HTTP/1.1 response heads (the proxy's header limits).
    private let decoderLimits: NIOHTTPDecoderLimitConfiguration
    private var clusters: [String: ClusterState] = [:]
    /// Idle HTTP/1.1 connections per pool, mutated in place (an empty list stays: taking the last connection and
    /// putting it back allocates nothing).
    private var idle: [UpstreamKey: [UpstreamHandler]] = [:]
    private var http2: [UpstreamKey: HTTP2Connection] = [:]
    private var nextWaiterID = 0

    /// Where upstream connections to meshed endpoints get their TLS contexts (one handshake per connection).
    let meshTLS: MeshTLS?

    init(eventLoop: any EventLoop, decoderLimits: NIOHTTPDecoderLimitConfiguration = .init(), meshTLS: MeshTLS? = nil) {
        self.meshTLS = meshTLS
        self.eventLoop = eventLoop
        self.decoderLimits = decoderLimits
    }

    private func state(for target: UpstreamTarget) -> ClusterState {
        if let state = self.clusters[target.cluster] {
            if state.limiter.limits != target.limits {
                // A new config changed the limits: keep the counts, apply the new bounds.
                var limiter = ConnectionLimiter(limits: target.limits)
                limiter.adopt(counts: state.limiter)
                state.limiter = limiter
            }
            return state
        }
        let state = ClusterState(limits: target.limits)
        self.clusters[target.cluster] = state
        return state
    }

    /// Asks for a stream to `target`; the answer comes through `requester` (possibly before this returns).
    /// Returns a waiter id to pass to `cancel` when the request stops waiting.
    @discardableResult
    func acquire(_ target: UpstreamTarget, for requester: any UpstreamRequester, ticket: Int) -> Int? {
        switch target.protocolKind {
        case .http1:
            return self.acquireHTTP1(target, for: requester, ticket: ticket)
        case .http2:
            return self.acquireHTTP2(target, for: requester, ticket: ticket)
        }
    }

    /// The request no longer waits (it timed out, was answered or its client left).
    func cancel(waiter id: Int) {
        for state in self.clusters.values {
            if let index = state.waiters.firstIndex(where: { $0.id == id }) {
                state.waiters.remove(at: index)
                state.limiter.dequeueRequest()
                return
            }
        }
        for connection in self.http2.values {
            connection.cancel(waiter: id)
        }
    }

    // MARK: HTTP/1.1

    private func acquireHTTP1(_ target: UpstreamTarget, for requester: any UpstreamRequester, ticket: Int) -> Int? {
        let key = target.key
        while let connection = self.idle[key]?.popLast() {
            if connection.isActive {
                connection.leaveIdle()
                requester.upstreamAcquired(connection, ticket: ticket)
                return nil
            }
        }
        let state = self.state(for: target)
        if state.limiter.tryAcquireConnection() == .admitted || self.closeIdle(ofCluster: target.cluster, state) {
            self.connectHTTP1(target, for: requester, ticket: ticket)
            return nil
        }
        guard state.limiter.tryQueueRequest() == .admitted else {
            requester.upstreamUnavailable(.overflow, ticket: ticket)
            return nil
        }
        self.nextWaiterID += 1
        state.waiters.append(Waiter(id: self.nextWaiterID, target: target, requester: requester, ticket: ticket))
        return self.nextWaiterID
    }

    /// At the connection limit: closes an idle connection of the cluster (to another endpoint) to make room,
    /// and reserves its slot. False when none is idle.
    private func closeIdle(ofCluster cluster: String, _ state: ClusterState) -> Bool {
        for (key, connections) in self.idle {
            guard let index = connections.firstIndex(where: { $0.cluster == cluster }) else {
                continue
            }
            guard let connection = self.idle[key]?.remove(at: index) else {
                continue
            }
            // Its slot passes to the new connection; its close must not release it again.
            connection.countsTowardLimit = false
            connection.close()
            return true
        }
        return false
    }

    private func connectHTTP1(_ target: UpstreamTarget, for requester: any UpstreamRequester, ticket: Int) {
        let bound = NIOLoopBound(self, eventLoop: self.eventLoop)
        weak var weakRequester = requester
        let requesterBox = NIOLoopBound(RequesterBox(weakRequester), eventLoop: self.eventLoop)
        let cluster = target.cluster
        let key = target.key
        let decoderLimits = self.decoderLimits
        let meshTLS = self.meshTLS
        ClientBootstrap(group: self.eventLoop)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connectTimeout(target.connectTimeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try addMeshTLSIfNeeded(target, meshTLS: meshTLS, to: channel)
                    // One codec both ways: it notes each request head going out (a response to HEAD has no body).
                    try channel.pipeline.syncOperations.addHandler(HTTP1ClientCodec(limits: decoderLimits))
                    try channel.pipeline.syncOperations.addHandler(
                        UpstreamHandler(pool: bound.value, key: key, cluster: cluster, kind: .http1))
                }
            }
            .connect(host: target.host, port: target.port)
            .whenComplete { result in
                let pool = bound.value
                let requester = requesterBox.value.requester
                switch result {
                case .success(let channel):
                    guard let handler = try? channel.pipeline.syncOperations.handler(type: UpstreamHandler.self)
                    else {
                        channel.close(promise: nil)
                        requester?.upstreamUnavailable(.upstreamConnectFailure, ticket: ticket)
                        return
                    }
                    if let requester {
                        requester.upstreamAcquired(handler, ticket: ticket)
                    } else {
                        pool.release(handler, reusable: true)
                    }
                case .failure:
                    pool.connectionClosed(cluster: cluster)
                    requester?.upstreamUnavailable(.upstreamConnectFailure, ticket: ticket)
                }
            }
    }

    /// A request is done with an HTTP/1.1 connection: keep it for the next one (a waiter, or idle) when it
    /// can take one, otherwise close it.
    func release(_ connection: UpstreamHandler, reusable: Bool) {
        connection.detach()
        guard connection.kind == .http1 else {
            connection.close()
            return
        }
        connection.requestsServed += 1
        guard reusable, connection.isActive, let state = self.clusters[connection.cluster],
            state.limiter.connectionMayServe(requestsServed: connection.requestsServed)
        else {
            connection.close()
            return
        }
        if let index = state.waiters.firstIndex(where: { $0.target.key == connection.key }) {
            let waiter = state.waiters.remove(at: index)
            state.limiter.dequeueRequest()
            if let requester = waiter.requester {
                requester.upstreamAcquired(connection, ticket: waiter.ticket)
                return
            }
        }
        if !state.waiters.isEmpty {
            // Someone waits for another endpoint: this connection's slot goes to them.
            connection.countsTowardLimit = false
            connection.close()
            state.limiter.releaseConnection()
            self.serveWaiter(state)
            return
        }
        let idleTimeout = state.limiter.limits.idleTimeoutMs
        connection.enterIdle(timeout: .milliseconds(Int64(idleTimeout > 0 ? idleTimeout : 60_000)))
        self.idle[connection.key, default: []].append(connection)
    }

    /// An HTTP/1.1 connection closed (or failed to open): free its slot for a waiter.
    func connectionClosed(_ connection: UpstreamHandler) {
        if let index = self.idle[connection.key]?.firstIndex(where: { $0 === connection }) {
            self.idle[connection.key]?.remove(at: index)
        }
        if connection.countsTowardLimit {
            connection.countsTowardLimit = false
            self.connectionClosed(cluster: connection.cluster)
        }
    }

    private func connectionClosed(cluster: String) {
        guard let state = self.clusters[cluster] else {
            return
        }
        state.limiter.releaseConnection()
        self.serveWaiter(state)
    }

    /// Opens a connection for the first waiter that still waits, if a slot is free.
    private func serveWaiter(_ state: ClusterState) {
        while !state.waiters.isEmpty {
            let waiter = state.waiters.removeFirst()
            state.limiter.dequeueRequest()
            guard let requester = waiter.requester else {
                continue
            }
            guard state.limiter.tryAcquireConnection() == .admitted else {
                // No slot after all (limits shrank): it waits again.
                _ = state.limiter.tryQueueRequest()
                state.waiters.insert(waiter, at: 0)
                return
            }
            self.connectHTTP1(waiter.target, for: requester, ticket: waiter.ticket)
            return
        }
    }

    // MARK: HTTP/2

    private func acquireHTTP2(_ target: UpstreamTarget, for requester: any UpstreamRequester, ticket: Int) -> Int? {
        let key = target.key
        let connection: HTTP2Connection
        if let existing = self.http2[key], existing.acceptsStreams {
            connection = existing
        } else {
            connection = HTTP2Connection(target: target, pool: self)
            self.http2[key] = connection
            connection.connect()
        }
        let state = self.state(for: target)
        if connection.isReady {
            connection.openStream(for: requester, ticket: ticket)
            if !state.limiter.connectionMayServe(requestsServed: connection.streamsOpened) {
                connection.acceptsStreams = false
            }
            return nil
        }
        guard state.limiter.tryQueueRequest() == .admitted else {
            requester.upstreamUnavailable(.overflow, ticket: ticket)
            return nil
        }
        self.nextWaiterID += 1
        connection.wait(id: self.nextWaiterID, requester: requester, ticket: ticket)
        return self.nextWaiterID
    }

    /// An HTTP/2 connection left its connecting state: its waiters no longer count as pending.
    fileprivate func http2Dequeued(_ count: Int, cluster: String) {
        guard let state = self.clusters[cluster] else {
            return
        }
        for _ in 0..<count {
            state.limiter.dequeueRequest()
        }
    }

    fileprivate func http2Closed(_ connection: HTTP2Connection) {
        if self.http2[connection.target.key] === connection {
            self.http2[connection.target.key] = nil
        }
    }
}

@available(*, unavailable)
extension UpstreamPool: Sendable {}

/// A weak reference to a requester, to carry through a connect callback.
private struct RequesterBox {
    weak var requester: (any UpstreamRequester)?

    init(_ requester: (any UpstreamRequester)?) {
        self.requester = requester
    }
}

/// One HTTP/2 (h2c) connection to an endpoint: requests wait while it connects, then each gets a stream.
final class HTTP2Connection {
    private struct Waiter {
        var id: Int
        weak var requester: (any UpstreamRequester)?
        var ticket: Int
    }

    let target: UpstreamTarget
    private weak var pool: UpstreamPool?
    private var handler: HTTP2ClientConnection?
    private var channel: (any Channel)?
    private var waiters: [Waiter] = []
    private(set) var streamsOpened = 0
    private var activeStreams = 0
    private var idleTimer: Scheduled<Void>?
    private var closed = false
    /// False once `maxRequestsPerConnection` streams were opened: new requests get a new connection.
    var acceptsStreams = true

    init(target: UpstreamTarget, pool: UpstreamPool) {
        self.target = target
        self.pool = pool
    }

    var isReady: Bool { self.handler != nil && !self.closed }

    func connect() {
        guard let pool = self.pool else {
            return
        }
        let loop = pool.eventLoop
        let bound = NIOLoopBound(self, eventLoop: loop)
        let target = self.target
        let meshTLS = pool.meshTLS
        ClientBootstrap(group: loop)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connectTimeout(self.target.connectTimeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try addMeshTLSIfNeeded(target, meshTLS: meshTLS, to: channel)
                    var connection = NIOHTTP2Handler.ConnectionConfiguration()
                    connection.initialSettings = [
                        HTTP2Setting(parameter: .enablePush, value: 0),
                        HTTP2Setting(parameter: .maxConcurrentStreams, value: 1000),
                        HTTP2Setting(parameter: .initialWindowSize, value: HTTP2ClientConnection.streamWindow),
                        HTTP2Setting(parameter: .maxHeaderListSize, value: 1 << 16),
                    ]
                    let handler = HTTP2ClientConnection()
                    handler.onGoAway = { bound.value.goAwayReceived() }
                    handler.onActive = { [weak handler] in
                        if let handler {
                            bound.value.connected(channel: channel, handler: handler)
                        }
                    }
                    try channel.pipeline.syncOperations.addHandler(FlushCoalescingHandler())
                    try channel.pipeline.syncOperations.addHandlers(
                        NIOHTTP2Handler(mode: .client, connectionConfiguration: connection), handler)
                }
            }
            .connect(host: self.target.host, port: self.target.port)
            .whenFailure { _ in
                // On success the connection is ready once the channel is active (`onActive`): the connect future
                // completes just before that.
                bound.value.closedNow()
            }
    }

    private func connected(channel: any Channel, handler: HTTP2ClientConnection) {
        self.channel = channel
        self.handler = handler
        let bound = NIOLoopBound(self, eventLoop: channel.eventLoop)
        channel.closeFuture.whenComplete { _ in
            bound.value.closedNow()
        }
        let waiters = self.waiters
        self.waiters.removeAll()
        self.pool?.http2Dequeued(waiters.count, cluster: self.target.cluster)
        for waiter in waiters {
            if let requester = waiter.requester {
                self.openStream(for: requester, ticket: waiter.ticket)
            }
        }
    }

    private func closedNow() {
        guard !self.closed else {
            return
        }
        self.closed = true
        self.idleTimer?.cancel()
        self.idleTimer = nil
        self.handler = nil
        self.pool?.http2Closed(self)
        let waiters = self.waiters
        self.waiters.removeAll()
        self.pool?.http2Dequeued(waiters.count, cluster: self.target.cluster)
        for waiter in waiters {
            waiter.requester?.upstreamUnavailable(.upstreamConnectFailure, ticket: waiter.ticket)
        }
    }

    /// The upstream sent GOAWAY: no new stream goes to this connection (the pool opens another), the streams in
    /// flight finish (those above the GOAWAY's last stream are refused by NIO and retried), then it closes.
    fileprivate func goAwayReceived() {
        self.acceptsStreams = false
        self.pool?.http2Closed(self)
        if self.activeStreams <= 0 {
            self.channel?.close(promise: nil)
        }
    }

    func wait(id: Int, requester: any UpstreamRequester, ticket: Int) {
        self.waiters.append(Waiter(id: id, requester: requester, ticket: ticket))
    }

    func cancel(waiter id: Int) {
        if let index = self.waiters.firstIndex(where: { $0.id == id }) {
            self.waiters.remove(at: index)
            self.pool?.http2Dequeued(1, cluster: self.target.cluster)
        }
    }

    func openStream(for requester: any UpstreamRequester, ticket: Int) {
        guard let handler = self.handler, let pool = self.pool else {
            requester.upstreamUnavailable(.upstreamConnectFailure, ticket: ticket)
            return
        }
        self.streamsOpened += 1
        self.activeStreams += 1
        self.idleTimer?.cancel()
        self.idleTimer = nil
        if !handler.hasStreamIDs {
            // This stream takes the last id: the next request opens a new connection.
            self.acceptsStreams = false
            pool.http2Closed(self)
        }
        let upstream = UpstreamHandler(pool: pool, key: self.target.key, cluster: self.target.cluster, kind: .http2)
        _ = handler.makeStream(for: upstream)
        upstream.onClose = { [weak self] in
            self?.streamClosed()
        }
        requester.upstreamAcquired(upstream, ticket: ticket)
    }

    /// A stream ended: a retired connection closes with its last stream; an idle one after the idle timeout.
    private func streamClosed() {
        self.activeStreams -= 1
        guard self.activeStreams <= 0, let channel = self.channel else {
            return
        }
        if !self.acceptsStreams {
            channel.close(promise: nil)
            return
        }
        let idleTimeout = self.target.limits.idleTimeoutMs
        let bound = NIOLoopBound(self, eventLoop: channel.eventLoop)
        self.idleTimer = channel.eventLoop.scheduleTask(
            in: .milliseconds(Int64(idleTimeout > 0 ? idleTimeout : 60_000))
        ) {
            let connection = bound.value
            if connection.activeStreams <= 0 {
                connection.acceptsStreams = false
                connection.pool?.http2Closed(connection)
                connection.channel?.close(promise: nil)
            }
        }
    }
}

@available(*, unavailable)
extension HTTP2Connection: Sendable {}

/// The `UpstreamPool` of each event loop of a group, created lazily on that loop.
final class UpstreamPools: Sendable {
    private let boxes: [ObjectIdentifier: NIOLoopBoundBox<UpstreamPool?>]
    private let decoderLimits: NIOHTTPDecoderLimitConfiguration
    let meshTLS: MeshTLS?

    init(group: any EventLoopGroup, decoderLimits: NIOHTTPDecoderLimitConfiguration = .init(), meshTLS: MeshTLS? = nil)
    {
        self.decoderLimits = decoderLimits
        self.meshTLS = meshTLS
        var boxes: [ObjectIdentifier: NIOLoopBoundBox<UpstreamPool?>] = [:]
        for loop in group.makeIterator() {
            boxes[ObjectIdentifier(loop)] = .makeEmptyBox(valueType: UpstreamPool.self, eventLoop: loop)
        }
        self.boxes = boxes
    }

    /// The pool of `loop` (call on `loop`); `nil` when `loop` is not one of the group's.
    func pool(on loop: any EventLoop) -> UpstreamPool? {
        guard let box = self.boxes[ObjectIdentifier(loop)] else {
            return nil
        }
        if let pool = box.value {
            return pool
        }
        let pool = UpstreamPool(eventLoop: loop, decoderLimits: self.decoderLimits, meshTLS: self.meshTLS)
        box.value = pool
        return pool
    }
}
