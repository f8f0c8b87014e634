import Logging
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import WeftHTTP

/// The admin port (default 15000, localhost only): `/ready`, `/config_dump`, `/stats`, `/metrics`.
/// Control path: async/await per request is fine here.
public final class AdminServer: Service {
    public typealias MetricsRenderer = @Sendable () -> String

    private let server: EndpointServer

    public init(
        host: String = "127.0.0.1", port: Int, store: ProxyStateStore, metrics: ProxyMetrics,
        renderMetrics: @escaping MetricsRenderer = { "" }, logger: Logger
    ) {
        let endpoints = Endpoints(store: store, metrics: metrics, renderMetrics: renderMetrics)
        self.server = EndpointServer(host: host, port: port, logger: logger) { endpoints.respond(to: $0) }
    }

    /// The port actually bound (useful with port 0), once listening.
    public var listeningPort: Int? { self.server.listeningPort }

    public func run() async throws {
        try await self.server.run()
    }

    private struct Endpoints: Sendable {
        let store: ProxyStateStore
        let metrics: ProxyMetrics
        let renderMetrics: MetricsRenderer

        func respond(to request: HTTPRequestHead) -> EndpointServer.Response {
            switch request.path {
            case "/ready":
                return readiness(self.store)
            case "/config_dump":
                guard let state = self.store.current else {
                    return EndpointServer.Response(.serviceUnavailable, "no config loaded\n")
                }
                let body = "{\"version\": \(jsonQuoted(state.config.version)), \"config\": \(state.json)}\n"
                return EndpointServer.Response(.ok, contentType: "application/json", body)
            case "/stats":
                let version = self.store.current?.config.version ?? "none"
                return EndpointServer.Response(.ok, "config.version: \(version)\n" + self.metrics.renderStats())
            case "/metrics":
                return EndpointServer.Response(
                    .ok, contentType: "text/plain; version=0.0.4; charset=utf-8", self.renderMetrics())
            default:
                return EndpointServer.Response(
                    .notFound, "no such path: \(request.path); try /ready, /config_dump, /stats or /metrics\n")
            }
        }
    }
}

/// The status port (`--status-port`, 15020 in an injected pod, on all addresses so that the kubelet reaches it):
/// `/healthz/ready`, 200 once a config is loaded and the listeners are bound, else 503 (the injected sidecar's
/// startup and readiness probe); and `/app-health/<container>/<probe>`, the app's own HTTP probes run from the
/// proxy (``AppProbes``).
public final class StatusServer: Service {
    private let server: EndpointServer

    public init(
        host: String = "0.0.0.0", port: Int, store: ProxyStateStore, probes: AppProbes = AppProbes(),
        logger: Logger
    ) {
        self.server = EndpointServer(host: host, port: port, logger: logger) { request in
            let path = request.path
            if path.hasPrefix("/app-health/") {
                let eventLoop = MultiThreadedEventLoopGroup.singleton.any()
                return await probes.run(path, on: eventLoop)
                    ?? EndpointServer.Response(.notFound, "no app probe at \(path)\n")
            }
            switch path {
            case "/healthz/ready":
                return readiness(store)
            default:
                return EndpointServer.Response(.notFound, "no such path: \(path); try /healthz/ready\n")
            }
        }
    }

    /// The port actually bound (useful with port 0), once listening.
    public var listeningPort: Int? { self.server.listeningPort }

    public func run() async throws {
        try await self.server.run()
    }
}

/// 200 with the config's version once the proxy is ready (``ProxyStateStore/notReadyReason``), else 503 with why.
private func readiness(_ store: ProxyStateStore) -> EndpointServer.Response {
    if let reason = store.notReadyReason {
        return EndpointServer.Response(.serviceUnavailable, "not ready: \(reason)\n")
    }
    return EndpointServer.Response(.ok, "ready: config \(store.current?.config.version ?? "none")\n")
}
