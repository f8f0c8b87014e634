public import Logging
import NIOCore
public import NIOHTTP1
import NIOPosix
public import ServiceLifecycle
import Synchronization

/// A plain HTTP/1.1 server for a few GET endpoints (health, metrics, status, admin): the controller's
/// monitoring port and the proxy's admin port. Not for the data path.
///
/// Each connection is served in its own child task; an error ends that connection, never the server.
public final class EndpointServer: Service {
    /// What an endpoint answers.
    public struct Response: Sendable {
        public var status: HTTPResponseStatus
        public var contentType: String
        public var body: String

        public init(_ status: HTTPResponseStatus, contentType: String = "text/plain; charset=utf-8", _ body: String) {
            self.status = status
            self.contentType = contentType
            self.body = body
        }
    }

    public typealias Responder = @Sendable (HTTPRequestHead) async -> Response

    private let host: String
    private let port: Int
    private let respond: Responder
    private let logger: Logger
    private let boundPort = Mutex<Int?>(nil)

    public init(host: String, port: Int, logger: Logger, respond: @escaping Responder) {
        self.host = host
        self.port = port
        self.logger = logger
        self.respond = respond
    }

    /// The port actually bound (useful with port 0), once listening.
    public var listeningPort: Int? { self.boundPort.withLock { $0 } }

    public func run() async throws {
        // The classic initializer with an `AcceptQueue`, not the async `bind`: see `CancellationSafeServing`.
        let queue = AcceptQueue<NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>>()
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try queue.admit {
                        try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(
                            wrappingChannelSynchronously: channel)
                    }
                }
            }
            .bind(host: self.host, port: self.port).get()
        let bound = server.localAddress?.port ?? self.port
        self.boundPort.withLock { $0 = bound }
        self.logger.info("listening", metadata: ["http.port": "\(bound)"])
        await withGracefulShutdownHandler {
            await CancellationSafeServing.serve(listener: server, queue: queue) { connection in
                // Kept-alive connections (a Prometheus scraper's) must not hold a shutdown up.
                try? await cancelWhenGracefulShutdown { await self.serve(connection) }
            }
        } onGracefulShutdown: {
            queue.finish()
            server.close(promise: nil)
        }
    }

    /// Serves one connection until the client closes it (keep-alive honoured).
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
                        let response: Response =
                            request.method == .GET || request.method == .HEAD
                            ? await self.respond(request)
                            : Response(.methodNotAllowed, "only GET and HEAD are served\n")
                        var headers = HTTPHeaders()
                        headers.add(name: "content-type", value: response.contentType)
                        headers.add(name: "content-length", value: String(response.body.utf8.count))
                        if !request.isKeepAlive { headers.add(name: "connection", value: "close") }
                        try await outbound.write(
                            .head(HTTPResponseHead(version: request.version, status: response.status, headers: headers))
                        )
                        if request.method != .HEAD {
                            try await outbound.write(.body(.byteBuffer(ByteBuffer(string: response.body))))
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
}

extension HTTPRequestHead {
    /// The path without the query string.
    public var path: String {
        self.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? self.uri
    }
}
