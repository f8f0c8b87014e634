import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import Testing
import WeftProxy

/// The status port an injected sidecar is probed on: `/healthz/ready` is 503 until a config is loaded, then 200.
@Suite("Status port")
struct StatusServerTests {
    @Test func readinessFollowsTheConfig() async throws {
        let store = ProxyStateStore()
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
            func get(_ path: String) async throws -> (UInt, String) {
                let response = try await HTTPClient.shared.execute(
                    HTTPClientRequest(url: "http://127.0.0.1:\(bound)\(path)"), timeout: .seconds(30))
                return (response.status.code, String(buffer: try await response.body.collect(upTo: 1 << 16)))
            }
            #expect(try await get("/healthz/ready").0 == 503)
            let config = TestConfig.config(outbound: [], clusters: [])
            store.replace(with: try ProxyState.load(try config.encoded()))
            let ready = try await get("/healthz/ready")
            #expect(ready.0 == 200 && ready.1.contains(config.version))
            #expect(try await get("/config_dump").0 == 404)
        }
    }
}
