import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization

/// The admin port (default 15000, localhost only): `/ready`, `/config_dump`, `/stats`, `/metrics`.
/// Control path: async/await per request is fine here.
public final class AdminServer: Service {
    public typealias MetricsRenderer = @Sendable () -> String

    private let host: String
    private let port: Int
    private let store: ProxyStateStore
    private let metrics: ProxyMetrics
    private let renderMetrics: MetricsRenderer
    private let logger: Logger
    private let boundPort = Mutex<Int?>(nil)

    public init(
        host: String = "127.0.0.1", port: Int, store: ProxyStateStore, metrics: ProxyMetrics,
        renderMetrics: @escaping MetricsRenderer = { "" }, logger: Logger
    ) {
        self.host = host
        self.port = port
        self.store = store
        self.metrics = metrics
        self.renderMetrics = renderMetrics
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
        self.logger.info(
            "admin listening", metadata: ["admin.port": "\(server.channel.localAddress?.port ?? self.port)"])
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
                        let (status, contentType, body) = self.respond(to: request)
                        var headers = HTTPHeaders()
                        headers.add(name: "content-type", value: contentType)
                        headers.add(name: "content-length", value: String(body.utf8.count))
                        if !request.isKeepAlive { headers.add(name: "connection", value: "close") }
                        try await outbound.write(
                            .head(HTTPResponseHead(version: request.version, status: status, headers: headers)))
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
            self.logger.debug("admin connection ended", metadata: ["error": "\(error)"])
        }
    }

    func respond(to request: HTTPRequestHead) -> (HTTPResponseStatus, String, String) {
        let text = "text/plain; charset=utf-8"
        let path = request.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? request.uri
        switch path {
        case "/ready":
            guard let state = self.store.current else {
                return (.serviceUnavailable, text, "not ready: no config loaded\n")
            }
            return (.ok, text, "ready: config \(state.config.version)\n")
        case "/config_dump":
            guard let state = self.store.current else {
                return (.serviceUnavailable, text, "no config loaded\n")
            }
            let body = "{\"version\": \(jsonString(state.config.version)), \"config\": \(state.json)}\n"
            return (.ok, "application/json", body)
        case "/stats":
            let version = self.store.current?.config.version ?? "none"
            return (.ok, text, "config.version: \(version)\n" + self.metrics.renderStats())
        case "/metrics":
            return (.ok, "text/plain; version=0.0.4; charset=utf-8", self.renderMetrics())
        default:
            return (.notFound, text, "no such path: \(path); try /ready, /config_dump, /stats or /metrics\n")
        }
    }
}

/// `value` as a JSON string literal.
private func jsonString(_ value: String) -> String {
    var out = "\""
    for scalar in value.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if scalar.value < 0x20 {
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + "\""
}
