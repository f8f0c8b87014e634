import ProxyConfig
import ProxyCore
import Testing

private func limits(connections: Int, pending: Int, perConnection: Int) -> ConnectionLimits {
    ConnectionLimits(
        maxConnections: connections, maxPendingRequests: pending, maxRequestsPerConnection: perConnection,
        connectTimeoutMs: 1000, idleTimeoutMs: 60_000)
}

@Suite("ConnectionLimiter")
struct ConnectionLimiterTests {
    @Test("connections overflow at maxConnections and free up on release")
    func connections() {
        var limiter = ConnectionLimiter(limits: limits(connections: 2, pending: 1, perConnection: 0))
        let transcript = (0..<3).map { _ in limiter.tryAcquireConnection() }
        #expect(transcript == [.admitted, .admitted, .overflow])
        limiter.releaseConnection()
        #expect(limiter.tryAcquireConnection() == .admitted)
        #expect(limiter.activeConnections == 2)
        #expect(limiter.overflows == 1)
        for _ in 0..<5 { limiter.releaseConnection() }
        #expect(limiter.activeConnections == 0)
    }

    @Test("pending requests overflow at maxPendingRequests")
    func pending() {
        var limiter = ConnectionLimiter(limits: limits(connections: 1, pending: 2, perConnection: 0))
        #expect(
            [limiter.tryQueueRequest(), limiter.tryQueueRequest(), limiter.tryQueueRequest()] == [
                .admitted, .admitted, .overflow,
            ])
        limiter.dequeueRequest()
        #expect(limiter.tryQueueRequest() == .admitted)
        #expect(limiter.pendingRequests == 2)
        #expect(ConnectionLimiter.overflowReason == "overflow")
    }

    @Test("requests per connection", arguments: [(0, 1_000_000, true), (3, 2, true), (3, 3, false)])
    func perConnection(limit: Int, served: Int, mayServe: Bool) {
        let limiter = ConnectionLimiter(limits: limits(connections: 1, pending: 1, perConnection: limit))
        #expect(limiter.connectionMayServe(requestsServed: served) == mayServe)
    }

    @Test("a limit of 0 is unlimited")
    func unlimited() {
        var limiter = ConnectionLimiter(limits: limits(connections: 0, pending: 0, perConnection: 0))
        #expect((0..<1000).allSatisfy { _ in limiter.tryAcquireConnection() == .admitted })
        #expect((0..<1000).allSatisfy { _ in limiter.tryQueueRequest() == .admitted })
    }
}
