import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Draining (SIGTERM) on HTTP/1.1 keep-alive connections, on the `weft-proxy` process: an idle connection closes at
/// once (whether it still has its HTTP handlers or went dormant), a busy one closes after its answer, and a request
/// pipelined behind that answer is not served. Raw sockets; every wait is bounded.
@Suite("weft-proxy drain of HTTP/1.1 connections")
struct ProxyDrainTests {
    @Test func idleConnectionsCloseBusyOnesAfterTheirAnswerAndPipelinedRequestsAreNotServed() async throws {
        try await withUpstreams(["a"]) { upstreams in
            try await withProxyBinary(
                upstreamPort: upstreams[0].port, arguments: ["--drain-timeout", "120", "--dormant-after", "0"]
            ) { proxy in
                let port = proxy.outboundPort
                try await RawSession.with(port: port) { busy in
                    // A request the upstream holds, with a second one pipelined behind it, in one write.
                    try await busy.send(
                        "GET /hold HTTP/1.1\r\nHost: catalog\r\n\r\nGET /pipelined HTTP/1.1\r\nHost: catalog\r\n\r\n")
                    try await eventually { upstreams[0].heldRequests == 1 }
                    try await RawSession.with(port: port) { idle in
                        let first = try await idle.exchange(
                            "GET /one HTTP/1.1\r\nHost: catalog\r\n\r\n", until: "0\r\n\r\n")
                        #expect(first.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(first)")
                        proxy.process.signal(SIGTERM)
                        // Closed by the drain, not by its 120 s timeout (the session's 60 s hang guard would fire
                        // first). The proxy tells all connections of an event loop in one turn of it (one loop
                        // here), so the busy connection knows of the drain by now: only then is its answer sent.
                        await idle.waitClosed()
                        upstreams[0].releaseHeld()
                    }
                    let rest = try await busy.readToEnd()
                    #expect(rest.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(rest)")
                    #expect(rest.components(separatedBy: "HTTP/1.1 ").count == 2, "one answer only: \(rest)")
                }
                try await eventually { !proxy.process.process.isRunning }
                #expect(proxy.process.process.terminationStatus == 0)
                #expect(upstreams[0].requestsReceived == 2, "the pipelined request never went upstream")
            }
        }
    }

    @Test func aDormantConnectionClosesOnDrain() async throws {
        try await withUpstreams(["a"]) { upstreams in
            try await withProxyBinary(
                upstreamPort: upstreams[0].port, arguments: ["--drain-timeout", "120", "--dormant-after", "0.05"]
            ) { proxy in
                try await RawSession.with(port: proxy.outboundPort) { idle in
                    _ = try await idle.exchange("GET /one HTTP/1.1\r\nHost: catalog\r\n\r\n", until: "0\r\n\r\n")
                    try await eventually {
                        let stats = try await rawExchange(
                            port: proxy.adminPort, "GET /stats HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                        )
                        return stats.contains("outbound.http1.dormant: 1")
                    }
                    proxy.process.signal(SIGTERM)
                    // Closed by the drain, not by its 120 s timeout (the session's 60 s hang guard would fire first).
                    await idle.waitClosed()
                }
                try await eventually { !proxy.process.process.isRunning }
                #expect(proxy.process.process.terminationStatus == 0)
            }
        }
    }
}
