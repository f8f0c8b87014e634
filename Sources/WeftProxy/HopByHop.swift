import NIOHTTP1
import ProxyConfig

/// The hop-by-hop fields of RFC 9110 §7.6.1, which a proxy never forwards: `Connection` and every field it names,
/// `Keep-Alive`, `Proxy-Connection`, `TE` (except `trailers`), `Transfer-Encoding`, `Upgrade` (except a tunnel's),
/// `Trailer`, and `HTTP2-Settings` (an h2c upgrade's).
private func isHopByHop<Name: StringProtocol>(_ name: Name) -> Bool where Name.SubSequence == Substring {
    // By length first: most fields are compared with nothing.
    switch name.utf8.count {
    case 2:
        return name.equalsIgnoringASCIICase("te")
    case 7:
        return name.equalsIgnoringASCIICase("upgrade") || name.equalsIgnoringASCIICase("trailer")
    case 10:
        return name.equalsIgnoringASCIICase("connection") || name.equalsIgnoringASCIICase("keep-alive")
    case 14:
        return name.equalsIgnoringASCIICase("http2-settings")
    case 16:
        return name.equalsIgnoringASCIICase("proxy-connection")
    case 17:
        return name.equalsIgnoringASCIICase("transfer-encoding")
    default:
        return false
    }
}

extension HTTPHeaders {
    /// The field names this message's `Connection` field(s) list besides the hop-by-hop ones (usually none:
    /// `keep-alive`, `close`, `upgrade`), so that each field is checked against a short list once.
    private var namedInConnection: [Substring] {
        var names: [Substring] = []
        for field in self where field.name.equalsIgnoringASCIICase("connection") {
            field.value.forEachListToken { token in
                if !token.equalsIgnoringASCIICase("close"), !isHopByHop(token) {
                    names.append(token)
                }
                return true
            }
        }
        return names
    }

    /// A copy without hop-by-hop fields (and without `content-length`, for a request: the proxy frames it again,
    /// see `RequestFraming`), keeping `te: trailers` when `TE` lists `trailers` (gRPC needs it end to end) and, for
    /// an allowed upgrade, `upgrade: <upgrade>` with `connection: upgrade`. `also` names one more field to drop
    /// (lowercase). Rebuilt from the fields so that it does not carry the keep-alive state the parser recorded for
    /// the other connection (NIO keeps it inside `HTTPHeaders`).
    func withoutHopByHop(request: Bool = false, upgrade: String? = nil, also: String? = nil) -> HTTPHeaders {
        var fields: [(String, String)] = []
        // Room for what the proxy adds to a request (forwarded headers, a request ID, a traceparent) without a second
        // allocation.
        fields.reserveCapacity(self.count + (request ? 6 : 2))
        let named = self.namedInConnection
        var trailers = false
        for field in self {
            if isHopByHop(field.name) {
                if field.name.equalsIgnoringASCIICase("te"), field.value.containsToken("trailers") {
                    trailers = true
                }
                continue
            }
            if request, field.name.equalsIgnoringASCIICase("content-length") {
                continue
            }
            if let also, field.name.equalsIgnoringASCIICase(also) {
                continue
            }
            if named.contains(where: { field.name.equalsIgnoringASCIICase($0) }) {
                continue
            }
            fields.append((field.name, field.value))
        }
        if trailers {
            fields.append(("te", "trailers"))
        }
        if let upgrade {
            fields.append(("upgrade", upgrade))
            fields.append(("connection", "upgrade"))
        }
        return HTTPHeaders(fields)
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
