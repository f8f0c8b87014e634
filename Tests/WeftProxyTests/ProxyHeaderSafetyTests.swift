import Foundation
import Logging
import NIOCore
import NIOHTTP1
import ProxyConfig
import Testing

@testable import WeftProxy

/// Headers the proxy owns: config header operations that could split or reframe a message, and the
/// `x-weft-inbound-port` header.
@Suite("weft-proxy header safety: config header values, x-weft-inbound-port")
struct ProxyHeaderSafetyTests {
    private static func config(route: Route, clusterPort: Int = 9) -> ProxyConfig {
        TestConfig.config(
            outbound: [TestConfig.service("catalog", routes: [route])],
            clusters: [TestConfig.cluster("a", ports: [clusterPort])])
    }

    private static func route(
        request: HeaderOperations? = nil, response: HeaderOperations? = nil, backend: HeaderOperations? = nil,
        rewrite: Rewrite? = nil
    ) -> Route {
        Route(
            name: "default",
            forward: ForwardAction(
                backends: [WeightedCluster(cluster: "a", weight: 100, requestHeaders: backend)],
                requestHeaders: request, responseHeaders: response, rewrite: rewrite))
    }

    // MARK: Item 2 (proxy side): config header operations

    static let refused: [(String, Route)] = [
        (
            "forward.responseHeaders.set[0].value",
            route(response: HeaderOperations(set: [HeaderValue(name: "x-a", value: "b\r\nx-injected: 1")]))
        ),
        (
            "forward.requestHeaders.add[0].value",
            route(request: HeaderOperations(add: [HeaderValue(name: "x-a", value: "b\nGET /smuggled HTTP/1.1")]))
        ),
        (
            "forward.requestHeaders.set[0].value",
            route(request: HeaderOperations(set: [HeaderValue(name: "x-a", value: "\0")]))
        ),
        (
            "forward.requestHeaders.set[0].name",
            route(request: HeaderOperations(set: [HeaderValue(name: "content-length", value: "0")]))
        ),
        (
            "forward.backends[0].requestHeaders.add[0].name",
            route(backend: HeaderOperations(add: [HeaderValue(name: "Transfer-Encoding", value: "chunked")]))
        ),
        ("forward.responseHeaders.remove[0]", route(response: HeaderOperations(remove: ["connection"]))),
        ("forward.requestHeaders.remove[0]", route(request: HeaderOperations(remove: ["host"]))),
        (
            "forward.requestHeaders.set[0].name",
            route(request: HeaderOperations(set: [HeaderValue(name: ":authority", value: "x")]))
        ),
        (
            "forward.requestHeaders.set[0].name",
            route(request: HeaderOperations(set: [HeaderValue(name: "x a", value: "1")]))
        ),
        (
            "forward.requestHeaders.set[0].name",
            route(request: HeaderOperations(set: [HeaderValue(name: "upgrade", value: "h2c")]))
        ),
        ("forward.rewrite.authority", route(rewrite: Rewrite(authority: "evil\r\nx-injected: 1"))),
        ("forward.rewrite.path", route(rewrite: Rewrite(path: "/a b"))),
    ]

    @Test(arguments: refused)
    func headerOperationsThatCouldSplitOrReframeAMessageAreRefusedAtLoad(_ path: String, _ route: Route) throws {
        let config = Self.config(route: route)
        #expect {
            _ = try ProxyState(config: config, json: "{}")
        } throws: { error in
            guard let error = error as? ProxyConfigError else {
                return false
            }
            return error.code == "invalid_header" && error.message.contains(path)
                && error.message.contains("route default")
        }
    }

    @Test func redirectValuesAreCheckedToo() throws {
        let route = Route(name: "move", redirect: RedirectAction(path: "/new\r\nSet-Cookie: a=b", statusCode: 302))
        #expect(throws: ProxyConfigError.self) {
            _ = try ProxyState(config: Self.config(route: route), json: "{}")
        }
        let fine = Self.route(
            request: HeaderOperations(set: [HeaderValue(name: "x-canary", value: "a\tb ; c=\"d\"")]),
            response: HeaderOperations(remove: ["x-internal"]))
        _ = try ProxyState(config: Self.config(route: fine), json: "{}")
    }

    @Test func aRefusedConfigLeavesTheLastGoodOneServing() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "weft-header-\(UInt64.random(in: 0...UInt64.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("config.json")
        let good = Self.config(route: TestConfig.forward(to: "a"))
        try good.encoded().write(to: file, options: .atomic)
        let store = ProxyStateStore()
        let watcher = ConfigFileWatcher(path: file.path, store: store, logger: Logger(label: "test"))
        #expect(watcher.reload())
        let bad = Self.config(
            route: Self.route(response: HeaderOperations(set: [HeaderValue(name: "x-a", value: "1\r\n\r\n<html>")])))
        try bad.encoded().write(to: file, options: .atomic)
        #expect(!watcher.reload())
        #expect(store.current?.config.version == good.version)
    }

    // MARK: Item 8: x-weft-inbound-port

    @Test(arguments: [
        ("127.0.0.1", true), ("127.3.2.1", true), ("::1", true), ("10.1.2.3", false), ("192.168.0.7", false),
        ("fd00::1", false),
    ])
    func inboundPortHeaderIsHonouredOnlyFromLoopbackClients(_ address: String, _ honoured: Bool) throws {
        let remote = try SocketAddress(ipAddress: address, port: 40000)
        #expect(InboundPortHeader.isHonoured(from: remote) == honoured)
        #expect(!InboundPortHeader.isHonoured(from: nil))
    }

    @Test func aRemoteCallerCannotPickTheInboundPort() throws {
        let config = TestConfig.config(
            outbound: [], clusters: [],
            inbound: [
                InboundPort(port: 8080, protocol: .http1, tls: .disable, appPort: 18080),
                InboundPort(port: 9090, protocol: .http1, tls: .disable, appPort: 19090),
            ])
        let state = try ProxyState(config: config, json: "{}")
        let runtime = ClusterRuntime(state)
        var headers = HTTPHeaders([("host", "web"), (InboundPortHeader.name, "9090")])
        headers.add(name: "x-other", value: "1")
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: headers)
        let envelope = RequestEnvelope(head, isHTTP2: false, bodyFollows: nil, upgradeProtocols: [])
        let local = state.decideInbound(
            head, envelope: envelope, runtime: runtime,
            remoteAddress: try SocketAddress(ipAddress: "127.0.0.1", port: 1))
        let remote = state.decideInbound(
            head, envelope: envelope, runtime: runtime,
            remoteAddress: try SocketAddress(ipAddress: "10.0.0.9", port: 1),
            appConnectTimeout: .seconds(7))
        guard case .forward(let localPlan) = local, case .forward(let remotePlan) = remote else {
            Issue.record("expected forwards, got \(local) and \(remote)")
            return
        }
        #expect(localPlan.target.port == 19090)
        #expect(remotePlan.target.port == 18080)
        // The app's connect timeout: 1 s unless the limits say otherwise.
        #expect(localPlan.target.connectTimeout == .seconds(1))
        #expect(remotePlan.target.connectTimeout == .seconds(7))
        #expect(!localPlan.head.headers.contains(name: InboundPortHeader.name))
        #expect(!remotePlan.head.headers.contains(name: InboundPortHeader.name))
    }

    @Test func theOutboundSideNeverForwardsTheInboundPortHeader() async throws {
        try await withUpstreams(["a"]) { upstreams in
            let config = Self.config(route: TestConfig.forward(to: "a"), clusterPort: upstreams[0].port)
            try await ProxyHarness.withProxy(config: config) { proxy in
                let response = try await proxy.get("/", host: "catalog", headers: [("x-weft-inbound-port", "9090")])
                #expect(response.status == 200)
                #expect(!response.headers.contains(name: "x-echo-h-x-weft-inbound-port"))
            }
        }
    }
}
