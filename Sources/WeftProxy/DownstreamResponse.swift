import NIOCore
import NIOHTTP1
import ProxyConfig

/// The response heads (and local answers) that go to the downstream, built without I/O.
enum DownstreamResponse {
    /// What the connection header of an HTTP/1.x response says (HTTP/2 has none).
    enum Connection: Equatable {
        /// HTTP/1.1 keep-alive, the default: nothing to say.
        case implicit
        case close
        /// An HTTP/1.0 client whose connection stays open must be told.
        case keepAlive

        init(isHTTP2: Bool, keepAlive: Bool, version: HTTPVersion) {
            if isHTTP2 {
                self = .implicit
            } else if !keepAlive {
                self = .close
            } else if version == .http1_0 {
                self = .keepAlive
            } else {
                self = .implicit
            }
        }

        /// Adds the `connection` field this says, if any.
        func add(to headers: inout HTTPHeaders) {
            switch self {
            case .implicit:
                break
            case .close:
                headers.add(name: "connection", value: "close")
            case .keepAlive:
                headers.add(name: "connection", value: "keep-alive")
            }
        }
    }

    /// An answer from the proxy itself, with `x-weft-reason`: a short text body, or for a gRPC request status 200
    /// with `grpc-status`, `grpc-message` and `x-weft-reason` trailers (the body is empty then).
    struct Local {
        var head: HTTPResponseHead
        var body: String?
        var trailers: HTTPHeaders?
        /// The status recorded in metrics and logs (a gRPC answer's HTTP status is 200).
        var status: Int {
            Int(self.head.status.code)
        }

        init(
            status: Int, reason: ProxyReason, location: String? = nil, isGRPC: Bool, version: HTTPVersion,
            connection: Connection
        ) {
            var headers = HTTPHeaders()
            headers.add(name: "x-weft-reason", value: reason.rawValue)
            if isGRPC {
                headers.add(name: "content-type", value: "application/grpc")
                self.head = HTTPResponseHead(version: version, status: .ok, headers: headers)
                var trailers = HTTPHeaders()
                trailers.add(name: "grpc-status", value: String(grpcStatus(forHTTP: status, reason: reason)))
                trailers.add(name: "grpc-message", value: "weft: \(reason.rawValue)")
                trailers.add(name: "x-weft-reason", value: reason.rawValue)
                self.trailers = trailers
                self.body = nil
                return
            }
            if let location {
                headers.add(name: "location", value: location)
            }
            let body = "\(reason.rawValue)\n"
            headers.add(name: "content-type", value: "text/plain; charset=utf-8")
            headers.add(name: "content-length", value: String(body.utf8.count))
            connection.add(to: &headers)
            self.head = HTTPResponseHead(
                version: version, status: HTTPResponseStatus(statusCode: status), headers: headers)
            self.body = body
            self.trailers = nil
        }
    }

    /// The upstream's response head as it goes downstream: without its hop-by-hop fields (an accepted upgrade
    /// keeps its `upgrade`), with the route's response header rewrites, and the downstream connection's own
    /// `connection` field; with the upstream response's `Connection` options (read in the same pass: whether the
    /// upstream connection stays open).
    static func forwarded(
        _ response: HTTPResponseHead, rewrites: [HeaderOperations], version: HTTPVersion,
        connection: Connection, upgrade: Bool = false
    ) -> (head: HTTPResponseHead, upstream: ConnectionOptions) {
        let forwarded = response.headers.forwardedFields(
            request: false, upgrade: upgrade ? response.headers.first(name: "upgrade") : nil, options: nil
        ) { _, _, _ in true }
        var headers = HTTPHeaders(forwarded.fields)
        for operations in rewrites {
            headers.apply(operations)
        }
        connection.add(to: &headers)
        return (HTTPResponseHead(version: version, status: response.status, headers: headers), forwarded.options)
    }
}
