import Foundation
import KubeModel
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization

/// The controller's plain HTTP port (default 15014): `/healthz`, `/readyz`, `/metrics`, and `/status` (the
/// conditions of every Weft resource, as JSON: what the embedded default serves instead of writing them).
public final class ControllerHTTPServer: Service {
    public typealias MetricsRenderer = @Sendable () -> String
    public typealias Readiness = @Sendable () async -> Bool

    private let host: String
    private let port: Int
    private let state: ControllerState
    private let ready: Readiness
    private let renderMetrics: MetricsRenderer
    private let logger: Logger
    private let boundPort = Mutex<Int?>(nil)

    public init(
        host: String = "0.0.0.0", port: Int, state: ControllerState, ready: @escaping Readiness,
        metrics: @escaping MetricsRenderer = { "" }, logger: Logger
    ) {
        self.host = host
        self.port = port
        self.state = state
        self.ready = ready
        self.renderMetrics = metrics
        self.logger = logger
    }

    /// The port actually bound (useful with port 0), once listening.
    public var listeningPort: Int? { self.boundPort.withLock { $0 } }

    public func run() async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: self.host, port: self.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(
                        wrappingChannelSynchronously: channel)
                }
            }
        self.boundPort.withLock { $0 = server.channel.localAddress?.port }
        self.logger.info("listening", metadata: ["http.port": "\(server.channel.localAddress?.port ?? self.port)"])
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                try await server.executeThenClose { inbound in
                    for try await connection in inbound {
                        group.addTask { await self.serve(connection) }
                    }
                }
            }
        } onGracefulShutdown: {
            server.channel.close(promise: nil)
        }
    }

    /// Serves one connection until the client closes it; errors end the connection, never the server.
    private func serve(_ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>) async {
        do {
            try await connection.executeThenClose { inbound, outbound in
                var head: HTTPRequestHead?
                for try await part in inbound {
                    switch part {
                    case .head(let request):
                        head = request
                    case .body:
                        break
                    case .end:
                        guard let request = head else { continue }
                        let (status, contentType, body) = await self.respond(to: request)
                        var headers = HTTPHeaders()
                        headers.add(name: "Content-Type", value: contentType)
                        headers.add(name: "Content-Length", value: String(body.utf8.count))
                        if !request.isKeepAlive { headers.add(name: "Connection", value: "close") }
                        try await outbound.write(
                            .head(
                                HTTPResponseHead(
                                    version: request.version, status: status,
                                    headers: headers)))
                        if request.method != .HEAD {
                            try await outbound.write(.body(.byteBuffer(ByteBuffer(string: body))))
                        }
                        try await outbound.write(.end(nil))
                        if !request.isKeepAlive { return }
                        head = nil
                    }
                }
            }
        } catch {
            self.logger.debug("connection ended", metadata: ["error": "\(error)"])
        }
    }

    func respond(to request: HTTPRequestHead) async -> (HTTPResponseStatus, String, String) {
        guard request.method == .GET || request.method == .HEAD else {
            return (.methodNotAllowed, "text/plain; charset=utf-8", "only GET and HEAD are served\n")
        }
        let path = request.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? request.uri
        switch path {
        case "/healthz":
            return (.ok, "text/plain; charset=utf-8", "ok\n")
        case "/readyz":
            return await self.ready()
                ? (.ok, "text/plain; charset=utf-8", "ok\n")
                : (
                    .serviceUnavailable, "text/plain; charset=utf-8",
                    "not ready: the first full sync has not finished\n"
                )
        case "/metrics":
            return (.ok, "text/plain; version=0.0.4; charset=utf-8", self.renderMetrics())
        case "/status":
            let document = self.state.statusDocument()
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            let body = (try? encoder.encode(document)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
            return (.ok, "application/json", body + "\n")
        default:
            return (
                .notFound, "text/plain; charset=utf-8",
                "no such path: \(path); try /healthz, /readyz, /metrics or /status\n"
            )
        }
    }
}
