import ProxyConfig

/// Circuit-breaking limits of one cluster on one event loop: active connections, pending requests and
/// requests per connection. When a limit is reached the answer is `.overflow`, which the proxy turns into
/// a 503 with `x-weft-reason: overflow`.
///
/// A limit of 0 or less means unlimited. A value confined to one event loop.
public struct ConnectionLimiter {
    /// The answer to an acquire.
    public enum Admission: Sendable, Hashable {
        /// Go ahead; release it later.
        case admitted
        /// The limit is reached.
        case overflow
    }

    /// The value of the `x-weft-reason` header on the 503 sent for an overflow.
    public static let overflowReason = "overflow"

    /// The limits.
    public let limits: ConnectionLimits
    /// Connections open or opening.
    public private(set) var activeConnections = 0
    /// Requests waiting for a connection.
    public private(set) var pendingRequests = 0
    /// Overflows answered so far (for the `/stats` counters).
    public private(set) var overflows = 0

    /// A limiter for `limits`.
    public init(limits: ConnectionLimits) {
        self.limits = limits
    }

    /// Takes over the counts of `other` (the same cluster under its previous limits, after a config change).
    public mutating func adopt(counts other: ConnectionLimiter) {
        self.activeConnections = other.activeConnections
        self.pendingRequests = other.pendingRequests
        self.overflows = other.overflows
    }

    /// Reserves a new connection, or `.overflow` at `maxConnections`.
    public mutating func tryAcquireConnection() -> Admission {
        guard Self.below(self.limits.maxConnections, self.activeConnections) else { return self.overflow() }
        self.activeConnections += 1
        return .admitted
    }

    /// A connection reserved with `tryAcquireConnection` closed (or failed to open).
    public mutating func releaseConnection() {
        if self.activeConnections > 0 { self.activeConnections -= 1 }
    }

    /// Queues a request waiting for a connection, or `.overflow` at `maxPendingRequests`.
    public mutating func tryQueueRequest() -> Admission {
        guard Self.below(self.limits.maxPendingRequests, self.pendingRequests) else { return self.overflow() }
        self.pendingRequests += 1
        return .admitted
    }

    /// A queued request got a connection, timed out or was cancelled.
    public mutating func dequeueRequest() {
        if self.pendingRequests > 0 { self.pendingRequests -= 1 }
    }

    /// Whether a connection that has served `requestsServed` requests may take another; when not, the
    /// proxy closes it after its current request (`maxRequestsPerConnection`, 0 unlimited).
    public func connectionMayServe(requestsServed: Int) -> Bool {
        Self.below(self.limits.maxRequestsPerConnection, requestsServed)
    }

    private static func below(_ limit: Int, _ current: Int) -> Bool {
        limit <= 0 || current < limit
    }

    private mutating func overflow() -> Admission {
        self.overflows += 1
        return .overflow
    }
}

@available(*, unavailable)
extension ConnectionLimiter: Sendable {}
