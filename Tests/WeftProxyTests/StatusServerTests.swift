import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import Testing
import WeftProxy

/// The status port an injected sidecar is probed on: `/healthz/ready` is 503 until a config is loaded, then 200.
@Suite("Status port")
struct StatusServerTests {
    /// A status server on `store`; `body` gets a GET function that answers the status code and the body.
    private static func withStatusServer(
        _ store: ProxyStateStore,
        _ body: @Sendable (@Sendable (String) async throws -> (UInt, String)) async throws -> Void
    ) async throws {
        let server = StatusServer(host: "127.0.0.1", port: 0, store: store, logger: Logger(label: "test.status"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }
            defer { group.cancelAll() }
            var port: Int?
            for _ in 0..<3000 where port == nil {
                port = server.listeningPort
                if port == nil { try await Task.sleep(for: .milliseconds(10)) }
            }
            let bound = try #require(port)
            try await body { path in
                let response = try await HTTPClient.shared.execute(
                    HTTPClientRequest(url: "http://127.0.0.1:\(bound)\(path)"), timeout: .seconds(30))
                return (response.status.code, String(buffer: try await response.body.collect(upTo: 1 << 16)))
            }
        }
    }

    @Test func readinessFollowsTheConfig() async throws {
        let store = ProxyStateStore()
        try await Self.withStatusServer(store) { get in
            #expect(try await get("/healthz/ready").0 == 503)
            let config = TestConfig.config(outbound: [], clusters: [])
            store.replace(with: try ProxyState.load(try config.encoded()))
            let ready = try await get("/healthz/ready")
            #expect(ready.0 == 200 && ready.1.contains(config.version))
            #expect(try await get("/config_dump").0 == 404)
        }
    }

    /// A config is not enough: until the listeners made with the store are bound (a loaded machine binds them
    /// after the admin and status ports, and a port taken by another process is never bound), the proxy is not
    /// ready; once they are, it is; once they close, it is not again.
    @Test func readinessWaitsForTheListeners() async throws {
        let store = ProxyStateStore()
        let config = TestConfig.config(outbound: [], clusters: [])
        store.replace(with: try ProxyState.load(try config.encoded()))
        #expect(store.notReadyReason == nil)
        let listener = ProxyListener(
            direction: .outbound, port: 0, store: store, metrics: ProxyMetrics(), logger: Logger(label: "test.status"))
        try await Self.withStatusServer(store) { get in
            let before = try await get("/healthz/ready")
            #expect(before.0 == 503 && before.1 == "not ready: 0 of 1 listeners bound\n", "\(before)")
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await listener.run() }
                for _ in 0..<3000 where listener.listeningPort == nil || store.notReadyReason != nil {
                    try await Task.sleep(for: .milliseconds(10))
                }
                let ready = try await get("/healthz/ready")
                #expect(ready.0 == 200 && ready.1.contains(config.version), "\(ready)")
                group.cancelAll()
                try? await group.waitForAll()
            }
        }
        #expect(store.notReadyReason == "0 of 1 listeners bound")
    }
}
