import NIOHTTP1
import ProxyConfig

/// The field names that forwarding a message treats apart: the hop-by-hop fields of RFC 9110 §7.6.1, which a
/// proxy never forwards (`Connection` and every field it names, `Keep-Alive`, `Proxy-Connection`, `TE` (except
/// `trailers`), `Transfer-Encoding`, `Upgrade` (except a tunnel's), `Trailer`, and `HTTP2-Settings`, an h2c
/// upgrade's), and the end-to-end ones the proxy replaces or reads on a forwarded request. Told apart by length
/// first: most names are compared with nothing, and each field is classified once.
enum ForwardingField: Equatable {
    case other
    // Hop-by-hop.
    case te, upgrade, trailer, connection, keepAlive, http2Settings, proxyConnection, transferEncoding
    // End to end, looked at on a request.
    case host, expect, contentLength, traceparent, requestID, forwardedFor, forwardedProto, inboundPort

    init<Name: StringProtocol>(_ name: Name) where Name.SubSequence == Substring {
        switch name.utf8.count {
        case 2:
            self = name.equalsIgnoringASCIICase("te") ? .te : .other
        case 4:
            self = name.equalsIgnoringASCIICase("host") ? .host : .other
        case 6:
            self = name.equalsIgnoringASCIICase("expect") ? .expect : .other
        case 7:
            self =
                name.equalsIgnoringASCIICase("upgrade")
                ? .upgrade : name.equalsIgnoringASCIICase("trailer") ? .trailer : .other
        case 10:
            self =
                name.equalsIgnoringASCIICase("connection")
                ? .connection : name.equalsIgnoringASCIICase("keep-alive") ? .keepAlive : .other
        case 11:
            self = name.equalsIgnoringASCIICase("traceparent") ? .traceparent : .other
        case 12:
            self = name.equalsIgnoringASCIICase("x-request-id") ? .requestID : .other
        case 14:
            self =
                name.equalsIgnoringASCIICase("content-length")
                ? .contentLength : name.equalsIgnoringASCIICase("http2-settings") ? .http2Settings : .other
        case 15:
            self = name.equalsIgnoringASCIICase("x-forwarded-for") ? .forwardedFor : .other
        case 16:
            self = name.equalsIgnoringASCIICase("proxy-connection") ? .proxyConnection : .other
        case 17:
            self =
                name.equalsIgnoringASCIICase("transfer-encoding")
                ? .transferEncoding : name.equalsIgnoringASCIICase("x-forwarded-proto") ? .forwardedProto : .other
        case 19:
            self = name.equalsIgnoringASCIICase(InboundPortHeader.name) ? .inboundPort : .other
        default:
            self = .other
        }
    }

    var isHopByHop: Bool {
        switch self {
        case .te, .upgrade, .trailer, .connection, .keepAlive, .http2Settings, .proxyConnection, .transferEncoding:
            true
        default:
            false
        }
    }
}

/// What a message's `Connection` field(s) say (RFC 9112 §9.3, RFC 9110 §7.6.1): `close`, `keep-alive`, and the
/// other fields they name (usually none: `keep-alive`, `close` and `upgrade` name nothing to drop besides the
/// hop-by-hop fields), read in one pass that compares only the fields ten bytes long.
struct ConnectionOptions: Hashable {
    var present = false
    var close = false
    var keepAlive = 0
    /// The field names listed besides `close` and the hop-by-hop ones.
    var named: [Substring] = []

    init() {}

    init(_ headers: HTTPHeaders) {
        for field in headers where field.name.utf8.count == 10 && field.name.equalsIgnoringASCIICase("connection") {
            self.read(field.value)
        }
    }

    /// Takes in one `Connection` field's value.
    mutating func read(_ value: String) {
        self.present = true
        value.forEachListToken { token in
            if token.equalsIgnoringASCIICase("close") {
                self.close = true
            } else if token.equalsIgnoringASCIICase("keep-alive") {
                self.keepAlive += 1
            } else if !ForwardingField(token).isHopByHop {
                self.named.append(token)
            }
            return true
        }
    }

    /// NIO's `isKeepAlive(version:)` (`close` closes; `keep-alive` keeps an HTTP/1.0 connection; two such tokens
    /// close), without the arrays it builds when the decoder did not record the answer, as Weft's parser cannot
    /// (`HTTPHeaders`' keep-alive state is internal to NIO).
    func keepsAlive(version: HTTPVersion) -> Bool {
        if self.close || self.keepAlive > 1 {
            return false
        }
        return self.keepAlive == 1 || (version.major == 1 && version.minor >= 1)
    }
}

extension HTTPHeaders {
    /// The fields that go to the next hop, in one pass, as an array with room for `extra` more: without
    /// hop-by-hop fields (and without `content-length`, for a request: the proxy frames it again, see
    /// `RequestFraming`), keeping `te: trailers` when `TE` lists `trailers` (gRPC needs it end to end) and, for an
    /// allowed upgrade, `upgrade: <upgrade>` with `connection: upgrade`. A new array, so that the `HTTPHeaders`
    /// made of it does not carry the keep-alive state the parser recorded for the other connection (NIO keeps it
    /// inside `HTTPHeaders`). `keep` sees each end-to-end field (classified) and says whether it stays. `options`
    /// are this message's `Connection` options when the caller read them already (the fields they name never
    /// reach `keep` then); without them they are read in the same pass and the fields they name (rarely any) go
    /// afterwards. Returns the options too.
    func forwardedFields(
        request: Bool, upgrade: String?, options: ConnectionOptions?, extra: Int = 2,
        _ keep: (ForwardingField, _ name: String, _ value: String) -> Bool
    ) -> (fields: [(String, String)], options: ConnectionOptions) {
        var fields: [(String, String)] = []
        fields.reserveCapacity(self.count + extra)
        var read = ConnectionOptions()
        let named = options?.named ?? []
        var trailers = false
        for field in self {
            let kind = ForwardingField(field.name)
            if kind.isHopByHop {
                if kind == .te, field.value.containsToken("trailers") {
                    trailers = true
                } else if kind == .connection, options == nil {
                    read.read(field.value)
                }
                continue
            }
            if request, kind == .contentLength {
                continue
            }
            if !named.isEmpty, named.contains(where: { field.name.equalsIgnoringASCIICase($0) }) {
                continue
            }
            if keep(kind, field.name, field.value) {
                fields.append((field.name, field.value))
            }
        }
        if options == nil, !read.named.isEmpty {
            fields.removeAll { field in read.named.contains { field.0.equalsIgnoringASCIICase($0) } }
        }
        if trailers {
            fields.append(("te", "trailers"))
        }
        if let upgrade {
            fields.append(("upgrade", upgrade))
            fields.append(("connection", "upgrade"))
        }
        return (fields, options ?? read)
    }

    mutating func apply(_ operations: HeaderOperations?) {
        guard let operations else {
            return
        }
        for name in operations.remove {
            self.remove(name: name)
        }
        for header in operations.set {
            self.replaceOrAdd(name: header.name, value: header.value)
        }
        for header in operations.add {
            self.add(name: header.name, value: header.value)
        }
    }
}
