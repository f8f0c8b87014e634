import KubeModel
import NIOCore
import NIOHTTP1
import NIOPosix

/// A request for the API server's service proxy, `/api/v1/namespaces/NS/services/[SCHEME:]NAME[:PORT]/proxy/PATH`
/// (what `kubectl get --raw` and `weftctl` use to reach the controller's HTTP port without a port-forward). The real
/// server dials a ready endpoint of the Service; `FakeAPIServer` dials the port a test routed the Service to
/// (`routeServiceProxy`) and, like the real one without endpoints, answers 503 otherwise.
struct FakeServiceProxyRequest: Hashable, Sendable {
    var namespace: String
    var service: String
    /// The target on the Service: the path after `/proxy` (at least `/`), with the query.
    var uri: String

    /// Nil when `uri` is not a service proxy path.
    init?(uri: String) {
        let pathAndQuery = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        let parts = pathAndQuery[0].split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 8, parts[0].isEmpty, parts[1] == "api", parts[2] == "v1", parts[3] == "namespaces",
            parts[5] == "services", parts[7] == "proxy", !parts[4].isEmpty
        else {
            return nil
        }
        // NAME, NAME:PORT, or SCHEME:NAME:PORT (the port may be empty: `https:NAME:`).
        let name = parts[6].split(separator: ":", omittingEmptySubsequences: false)
        guard name.count <= 3, let service = name.count == 3 ? name[1] : name.first, !service.isEmpty else {
            return nil
        }
        self.namespace = String(parts[4])
        self.service = String(service)
        var target = "/" + parts.dropFirst(8).joined(separator: "/")
        if pathAndQuery.count > 1 { target += "?" + pathAndQuery[1] }
        self.uri = target
    }

    /// The real server's answer when the Service has no ready endpoint.
    var noEndpoints: FakeAPIError {
        FakeAPIError(
            code: 503, reason: "ServiceUnavailable",
            message: "no endpoints available for service \"\(self.service)\"")
    }
}

/// A response relayed from a Service's endpoint.
struct FakeProxiedResponse: Sendable {
    var status: HTTPResponseStatus
    var contentType: String?
    var body: ByteBuffer
}

/// GETs `uri` from 127.0.0.1:`port` over HTTP/1.1 on `eventLoop` and returns the whole response.
func fakeProxyGet(port: Int, uri: String, on eventLoop: any EventLoop) -> EventLoopFuture<FakeProxiedResponse> {
    let promise = eventLoop.makePromise(of: FakeProxiedResponse.self)
    ClientBootstrap(group: eventLoop)
        .connectTimeout(.seconds(5))
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHTTPClientHandlers()
                try channel.pipeline.syncOperations.addHandler(FakeProxyClientHandler(uri: uri, promise: promise))
            }
        }
        .connect(host: "127.0.0.1", port: port)
        .whenFailure { promise.fail($0) }
    return promise.futureResult
}

private final class FakeProxyClientHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private let uri: String
    private let promise: EventLoopPromise<FakeProxiedResponse>
    private var response: FakeProxiedResponse?
    private var done = false

    init(uri: String, promise: EventLoopPromise<FakeProxiedResponse>) {
        self.uri = uri
        self.promise = promise
    }

    func channelActive(context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "host", value: "127.0.0.1")
        headers.add(name: "connection", value: "close")
        context.write(
            self.wrapOutboundOut(
                .head(HTTPRequestHead(version: .http1_1, method: .GET, uri: self.uri, headers: headers))),
            promise: nil)
        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.response = FakeProxiedResponse(
                status: head.status, contentType: head.headers.first(name: "content-type"),
                body: context.channel.allocator.buffer(capacity: 0))
        case .body(var chunk):
            self.response?.body.writeBuffer(&chunk)
        case .end:
            if let response = self.response, !self.done {
                self.done = true
                self.promise.succeed(response)
            }
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.fail(ChannelError.eof)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.fail(error)
        context.close(promise: nil)
    }

    private func fail(_ error: any Error) {
        guard !self.done else { return }
        self.done = true
        self.promise.fail(error)
    }
}

@available(*, unavailable)
extension FakeProxyClientHandler: Sendable {}
