import Foundation
import KubeModel
import Logging
import NIOHTTP1
import ServiceLifecycle
import WeftHTTP

/// The controller's plain HTTP port (default 15014): `/healthz`, `/readyz`, `/metrics`, and `/status` (the
/// conditions of every Weft resource, as JSON: what the embedded default serves instead of writing them).
public final class ControllerHTTPServer: Service {
    public typealias MetricsRenderer = @Sendable () -> String
    public typealias Readiness = @Sendable () async -> Bool

    private let server: EndpointServer

    public init(
        host: String = "0.0.0.0", port: Int, state: ControllerState, ready: @escaping Readiness,
        metrics: @escaping MetricsRenderer = { "" }, logger: Logger
    ) {
        let endpoints = Endpoints(state: state, ready: ready, renderMetrics: metrics)
        self.server = EndpointServer(host: host, port: port, logger: logger) { await endpoints.respond(to: $0) }
    }

    /// The port actually bound (useful with port 0), once listening.
    public var listeningPort: Int? { self.server.listeningPort }

    public func run() async throws {
        try await self.server.run()
    }

    private struct Endpoints: Sendable {
        let state: ControllerState
        let ready: Readiness
        let renderMetrics: MetricsRenderer

        func respond(to request: HTTPRequestHead) async -> EndpointServer.Response {
            switch request.path {
            case "/healthz":
                return EndpointServer.Response(.ok, "ok\n")
            case "/readyz":
                return await self.ready()
                    ? EndpointServer.Response(.ok, "ok\n")
                    : EndpointServer.Response(.serviceUnavailable, "not ready: the first full sync has not finished\n")
            case "/metrics":
                return EndpointServer.Response(
                    .ok, contentType: "text/plain; version=0.0.4; charset=utf-8", self.renderMetrics())
            case "/status":
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                let body =
                    (try? encoder.encode(self.state.statusDocument()))
                    .map { String(decoding: $0, as: UTF8.self) } ?? "{}"
                return EndpointServer.Response(.ok, contentType: "application/json", body + "\n")
            default:
                return EndpointServer.Response(
                    .notFound, "no such path: \(request.path); try /healthz, /readyz, /metrics or /status\n")
            }
        }
    }
}
