import Logging
import NIOCore
import Testing
import WeftHTTP
import WeftProxy

/// `/app-health/` on the status port: the app's own probes, which the injector moved there, run by the proxy.
@Suite("weft-proxy status port: the app's probes")
struct AppProbeTests {
    static let logger = Logger(label: "weft.test.probes")

    /// A status server with `probes` (JSON as the injector writes it); `body` gets a GET function.
    static func withStatusServer(
        _ probes: String, _ body: @Sendable (@Sendable (String) async throws -> String) async throws -> Void
    ) async throws {
        let server = StatusServer(
            host: "127.0.0.1", port: 0, store: ProxyStateStore(), probes: try AppProbes(json: probes),
            logger: Self.logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }
            defer { group.cancelAll() }
            var port: Int?
            try await eventually {
                port = server.listeningPort
                return port != nil
            }
            let bound = try #require(port)
            try await body { path in
                try await rawResponse(
                    port: bound, "GET \(path) HTTP/1.1\r\nHost: status\r\nConnection: close\r\n\r\n", until: "\n\n")
            }
        }
    }

    static func entry(port: Int, path: String, headers: String = "", timeout: Int? = nil) -> String {
        let timeout = timeout.map { ", \"timeoutSeconds\": \($0)" } ?? ""
        return """
            {"httpGet": {"path": "\(path)", "port": \(port), "scheme": "HTTP"\(headers)}\(timeout)}
            """
    }

    @Test func theAppsAnswerIsTheProbesAnswer() async throws {
        try await withUpstreams(["app"]) { upstreams in
            let port = upstreams[0].port
            // 30 s probe timeouts (the kubelet's default is 1 s): the answers asserted are the app's, and a full
            // test run on two cores once kept this app from answering within 1 s.
            let json = """
                {"/app-health/app/readyz": \(Self.entry(port: port, path: "/status/204", timeout: 30)),
                 "/app-health/app/livez": \(Self.entry(port: port, path: "/status/503", timeout: 30)),
                 "/app-health/app/startupz": \(Self.entry(
                    port: port, path: "/", headers: #", "httpHeaders": [{"name": "Host", "value": "probe.example"}]"#,
                    timeout: 30))}
                """
            try await Self.withStatusServer(json) { get in
                let ready = try await get("/app-health/app/readyz")
                #expect(ready.hasPrefix("HTTP/1.1 204"), "\(ready)")
                let live = try await get("/app-health/app/livez")
                #expect(live.hasPrefix("HTTP/1.1 503"), "\(live)")
                #expect(live.contains("app probe: HTTP 503"))
                let startup = try await get("/app-health/app/startupz")
                #expect(startup.hasPrefix("HTTP/1.1 200"), "\(startup)")
                // The probe's own headers are sent, Host included, as the kubelet sends them.
                #expect(upstreams[0].lastHost == "probe.example")
                #expect(upstreams[0].requestsReceived == 3)
                let unknown = try await get("/app-health/other/readyz")
                #expect(unknown.hasPrefix("HTTP/1.1 404"), "\(unknown)")
            }
        }
    }

    @Test func anAppThatIsDownOrSilentFailsTheProbe() async throws {
        let silent = try await RawServer.start(.silent)
        do {
            let json = """
                {"/app-health/app/readyz": \(Self.entry(port: TestUpstream.refusingPort, path: "/")),
                 "/app-health/app/livez": \(Self.entry(port: silent.port, path: "/", timeout: 1))}
                """
            try await Self.withStatusServer(json) { get in
                let refused = try await get("/app-health/app/readyz")
                #expect(refused.hasPrefix("HTTP/1.1 503"), "\(refused)")
                #expect(refused.contains("app probe failed"), "\(refused)")
                // The app accepted and never answered: the probe's timeout ends it.
                let hung = try await get("/app-health/app/livez")
                #expect(hung.hasPrefix("HTTP/1.1 503"), "\(hung)")
                #expect(hung.contains("no answer within 1 s"), "\(hung)")
                #expect(silent.connectionsAccepted == 1)
            }
        } catch {
            await silent.stop()
            throw error
        }
        await silent.stop()
    }

    /// `weft-proxy wait` (the classic sidecar's postStart hook): exit 1 with the reason while the status port
    /// answers 503, exit 0 once the proxy has a config.
    ///
    /// The 503 comes from a responder in NIO channel handlers, not from an in-process `StatusServer`: the
    /// latter answers from Swift's cooperative pool, which the whole test run keeps busy on two cores, and it
    /// once took longer than wait's 5 s per attempt (three runs in a row reported "no answer within 5 s").
    /// `StatusServer`'s own 503 before a config is asserted by the status port tests above.
    @Test func waitReturnsOnceTheProxyIsReady() async throws {
        let unready = try await TestUpstream.start(name: "unready", status: 503)
        // (Read before `stop`: a closed listener has no port.)
        let unreadyPort = unready.port
        let notReady = try await runProcess([
            ProxyBinaryTests.binary, "wait", "--status-port", "\(unreadyPort)", "--timeout", "1", "--interval-ms",
            "100",
        ])
        await unready.stop()
        #expect(notReady.status == 1)
        #expect(
            notReady.stderr.contains("not ready after 1 s on 127.0.0.1:\(unreadyPort): HTTP 503"), "\(notReady)")

        let store = ProxyStateStore()
        store.replace(with: try ProxyState(config: TestConfig.config(outbound: [], clusters: []), json: nil))
        let server = StatusServer(host: "127.0.0.1", port: 0, store: store, logger: Self.logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }
            defer { group.cancelAll() }
            var port: Int?
            try await eventually {
                port = server.listeningPort
                return port != nil
            }
            let bound = try #require(port)
            // The default timeout (120 s) and 5 s attempts: a slow answer is retried, not a failure.
            let ready = try await runProcess(
                [ProxyBinaryTests.binary, "wait", "--status-port", "\(bound)"], timeout: .seconds(150))
            #expect(ready.status == 0, "\(ready)")
            #expect(ready.stdout == "weft-proxy is ready\n")
        }
    }

    @Test(arguments: [
        (#"{"/app-health/a/readyz": {"httpGet": {"path": "/"}}}"#, "/app-health/a/readyz.httpGet.port is missing"),
        (
            #"{"/app-health/a/readyz": {"httpGet": {"port": "80"}}}"#,
            "/app-health/a/readyz.httpGet.port has the wrong type"
        ),
        (
            #"{"/app-health/a/readyz": {"httpGet": {"port": 70000}}}"#,
            "/app-health/a/readyz.httpGet.port 70000 is not a port"
        ),
        (#"{"/healthz": {"httpGet": {"port": 80}}}"#, "/healthz is not an /app-health/ path"),
        (#"{"/app-health/a/readyz": {"httpGet": {"port": 80, "scheme": "TCP"}}}"#, "scheme \"TCP\" is neither"),
        (
            #"{"/app-health/a/readyz": {"httpGet": {"port": 80, "path": "/a b"}}}"#,
            "httpGet.path \"/a b\" is not a path"
        ),
        (
            #"{"/app-health/a/readyz": {"httpGet": {"port": 80, "httpHeaders": [{"name": "x", "value": "a\r\nb"}]}}}"#,
            "header \"x\" is not a valid header"
        ),
        ("not json", "is not valid JSON"),
    ])
    func malformedProbesAreRefusedNamingTheField(json: String, message: String) {
        #expect {
            _ = try AppProbes(json: json)
        } throws: { error in
            "\(error)".contains(message) && "\(error)".hasPrefix("WEFT_APP_PROBES")
        }
    }
}
