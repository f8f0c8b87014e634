import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import ServiceLifecycle
import Synchronization
import WeftHTTP

/// The admission webhooks over HTTPS (`--webhook-port`, 15017): `POST /inject` and `POST /validate`, answered by
/// ``AdmissionReviewer``, with the certificate of ``WebhookTLS``.
///
/// Each connection is served in its own child task; a bad request ends with an HTTP error and `x-weft-reason`
/// (400 for a malformed AdmissionReview, 405 for another method, 413 for a body over 3 MiB), never the server.
public final class AdmissionWebhookServer: Service {
    private let host: String
    private let port: Int
    private let tls: WebhookTLS
    private let reviewer: AdmissionReviewer
    private let logger: Logger
    private let boundPort = Mutex<Int?>(nil)

    public init(host: String, port: Int, tls: WebhookTLS, reviewer: AdmissionReviewer, logger: Logger) {
        self.host = host
        self.port = port
        self.tls = tls
        self.reviewer = reviewer
        self.logger = logger
    }

    /// The port actually bound (useful with port 0), once listening.
    public var listeningPort: Int? { self.boundPort.withLock { $0 } }

    public func run() async throws {
        let tls = self.tls
        // The classic initializer with an `AcceptQueue`, not the async `bind`: see `CancellationSafeServing`.
        let queue = AcceptQueue<NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>>()
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        NIOSSLServerHandler(context: tls.connectionContext()))
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
        self.logger.info("webhook listening", metadata: ["webhook.port": "\(bound)"])
        await withGracefulShutdownHandler {
            await CancellationSafeServing.serve(listener: server, queue: queue) { connection in
                await cancelWhenGracefulShutdown { await self.serve(connection) }
            }
        } onGracefulShutdown: {
            queue.finish()
            server.close(promise: nil)
        }
    }

    private func serve(_ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>) async {
        do {
            try await connection.executeThenClose { inbound, outbound in
                var head: HTTPRequestHead?
                var body: [UInt8] = []
                var tooLarge = false
                for try await part in inbound {
                    switch part {
                    case .head(let request):
                        head = request
                        body.removeAll(keepingCapacity: true)
                        tooLarge = false
                    case .body(let buffer):
                        if body.count + buffer.readableBytes > AdmissionReviewer.maxBodyBytes {
                            tooLarge = true
                        } else if !tooLarge {
                            body.append(contentsOf: buffer.readableBytesView)
                        }
                    case .end:
                        guard let request = head else { continue }
                        let path = request.path
                        let answer: AdmissionReviewer.Answer
                        if request.method != .POST {
                            answer = .init(status: 405, reason: "unsupported_method", body: "only POST is served\n")
                        } else if tooLarge {
                            answer = .init(
                                status: 413, reason: "body_too_large",
                                body: "the body is over \(AdmissionReviewer.maxBodyBytes) bytes\n")
                        } else {
                            answer = await self.reviewer.answer(path: path, body: body)
                        }
                        try await Self.write(answer, for: request, to: outbound)
                        if !request.isKeepAlive || answer.status >= 400 { return }
                        head = nil
                    }
                }
            }
        } catch {
            self.logger.debug("webhook connection ended", metadata: ["error": "\(error)"])
        }
    }

    private static func write(
        _ answer: AdmissionReviewer.Answer, for request: HTTPRequestHead,
        to outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>
    ) async throws {
        var headers = HTTPHeaders()
        headers.add(
            name: "content-type", value: answer.status == 200 ? "application/json" : "text/plain; charset=utf-8")
        headers.add(name: "content-length", value: String(answer.body.utf8.count))
        if let reason = answer.reason { headers.add(name: "x-weft-reason", value: reason) }
        if !request.isKeepAlive || answer.status >= 400 { headers.add(name: "connection", value: "close") }
        let status = HTTPResponseStatus(statusCode: answer.status)
        try await outbound.write(.head(HTTPResponseHead(version: request.version, status: status, headers: headers)))
        try await outbound.write(.body(.byteBuffer(ByteBuffer(string: answer.body))))
        try await outbound.write(.end(nil))
    }
}
