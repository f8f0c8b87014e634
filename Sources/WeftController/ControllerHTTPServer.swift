import Foundation
import KubeModel
import Logging
import NIOHTTP1
import ServiceLifecycle
import WeftHTTP

/// The controller's plain HTTP port (default 15014): `/healthz`, `/readyz`, `/metrics`, `/status` (the
/// conditions of every Weft resource, as JSON: what the embedded default serves instead of writing them), and,
/// with a push hub, `/proxies` (each proxy's sent and acknowledged versions, for `weftctl proxy-status`) and
/// `/proxies/NAMESPACE/POD` (the config the controller has for that proxy, for `weftctl proxy-config`).
public final class ControllerHTTPServer: Service {
    public typealias MetricsRenderer = @Sendable () -> String
    public typealias Readiness = @Sendable () async -> Bool

    private let server: EndpointServer

    public init(
        host: String = "0.0.0.0", port: Int, state: ControllerState, ready: @escaping Readiness,
        metrics: @escaping MetricsRenderer = { "" }, hub: PushHub? = nil, logger: Logger
    ) {
        let endpoints = Endpoints(state: state, ready: ready, renderMetrics: metrics, hub: hub)
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
        let hub: PushHub?

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
                return Self.json(self.state.statusDocument())
            case "/proxies" where self.hub != nil:
                return Self.json(self.hub?.proxies ?? [])
            case let path where path.hasPrefix("/proxies/") && self.hub != nil:
                let id = String(path.dropFirst("/proxies/".count))
                guard let config = self.hub?.config(for: id) else {
                    return EndpointServer.Response(.notFound, "no config for proxy \(id)\n")
                }
                return EndpointServer.Response(
                    .ok, contentType: "application/json", String(decoding: config, as: UTF8.self) + "\n")
            default:
                return EndpointServer.Response(
                    .notFound, "no such path: \(request.path); try /healthz, /readyz, /metrics or /status\n")
            }
        }

        static func json<T: Encodable>(_ value: T) -> EndpointServer.Response {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            let body = (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
            return EndpointServer.Response(.ok, contentType: "application/json", body + "\n")
        }
    }
}
