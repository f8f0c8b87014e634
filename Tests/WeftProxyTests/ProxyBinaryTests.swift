import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import ProxyConfig
import Testing

/// The `weft-proxy` executable as users run it: flags, config file, Prometheus `/metrics`, SIGTERM drain.
@Suite("weft-proxy executable")
struct ProxyBinaryTests {
    static let binary = packageRoot.appendingPathComponent(".build/debug/weft-proxy").path

    @Test func servesExportsMetricsAndDrainsOnSIGTERM() async throws {
        try await withUpstreams(["a"]) { upstreams in
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
                "weft-binary-\(UInt64.random(in: 0...UInt64.max))")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let configPath = directory.appendingPathComponent("config.json").path
            let config = TestConfig.config(
                outbound: [TestConfig.service("catalog", routes: [TestConfig.forward(to: "a")])],
                clusters: [TestConfig.cluster("a", ports: [upstreams[0].port])])
            try config.encoded().write(to: URL(fileURLWithPath: configPath))
            let outbound = try await TestUpstream.unusedPort()
            let inbound = try await TestUpstream.unusedPort()
            let admin = try await TestUpstream.unusedPort()
            let proxy = try await BackgroundProcess.start(
                Self.binary,
                [
                    "--config", configPath, "--outbound-port", "\(outbound)", "--inbound-port", "\(inbound)",
                    "--admin-port", "\(admin)", "--concurrency", "1", "--drain-timeout", "5",
                ], waitForLine: false)
            defer { proxy.stop() }

            try await eventually {
                let ready = try? await rawExchange(
                    port: admin, "GET /ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                return ready?.hasPrefix("HTTP/1.1 200") ?? false
            }
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(outbound)/items")
            request.headers.add(name: "host", value: "catalog")
            let response = try await TestResponse.execute(request, client: testClient)
            #expect(response.status == 200)
            #expect(response.server == "a")

            let metrics = try await TestResponse.execute(
                HTTPClientRequest(url: "http://127.0.0.1:\(admin)/metrics"), client: testClient)
            let text = String(buffer: metrics.body)
            #expect(text.contains("weft_proxy_requests_total{"), "\(text.prefix(2000))")
            #expect(text.contains("destination_service=\"a.shop.svc.cluster.local\""))
            #expect(text.contains("weft_proxy_request_duration_seconds_bucket{"))
            #expect(text.contains("weft_proxy_response_bytes_total{"))

            // A slow request is in flight when SIGTERM arrives: it completes, then the proxy exits cleanly.
            var slow = HTTPClientRequest(url: "http://127.0.0.1:\(outbound)/sleep/800")
            slow.headers.add(name: "host", value: "catalog")
            let slowRequest = slow
            async let slowResponse = TestResponse.execute(slowRequest, client: testClient)
            try await Task.sleep(for: .milliseconds(200))
            proxy.signal(SIGTERM)
            let finished = try await slowResponse
            #expect(finished.status == 200)
            try await eventually { !proxy.process.isRunning }
            #expect(proxy.process.terminationStatus == 0)
        }
    }
}
