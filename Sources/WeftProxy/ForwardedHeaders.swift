import NIOCore
import NIOHTTP1
import ProxyCore

/// `x-forwarded-for`, `x-forwarded-proto` and `x-request-id` on a forwarded request (README: "Forwarded
/// headers"). The rules follow who can be believed:
///
/// - **Outbound** (the client is the pod's own app on loopback): `x-forwarded-for` and `x-forwarded-proto` pass as
///   the app sent them (an app behind which TLS was terminated may say so); `x-forwarded-proto` is set to `http`
///   when absent, the scheme the app used. Appending 127.0.0.1 would tell nobody anything.
/// - **Inbound** (the client is another pod, or anything that reached the pod): the caller's address is appended
///   to `x-forwarded-for`, so the last entry, the one the app may trust, is the peer the proxy saw.
///   `x-forwarded-proto` from a verified mesh peer (mTLS) is kept (its proxy set it for its app), `https` when
///   absent; from a plaintext caller it is always `http`: a caller outside the mesh cannot claim a TLS hop.
/// - **`x-request-id`**, both ways: kept when it is 1 to 128 visible ASCII characters without spaces, else a new
///   random UUID (version 4) replaces it, so every request that crosses a proxy carries one to correlate logs.
enum ForwardedHeaders {
    /// Where the request came from, as far as the forwarded headers care.
    enum Origin {
        case outbound
        /// `remote`: the downstream peer's address; `meshPeer`: it presented a verified mesh identity (mTLS).
        case inbound(remote: SocketAddress?, meshPeer: Bool)
    }

    static let maxRequestIDLength = 128

    /// A request's fields as they go upstream, built in one pass over the client's (this runs on every request):
    /// without the hop-by-hop ones (see `HTTPHeaders.forwardedFields`), `content-length` (the proxy frames the
    /// body again, see `RequestFraming`), `expect` when the proxy answers `100-continue` itself, and the
    /// `x-weft-inbound-port` hint; `host` set to `authority`; `x-forwarded-for`, `x-forwarded-proto` and
    /// `x-request-id` by the rules above; a new `traceparent` when none came; the framing. The client's fields keep
    /// their order; what the proxy sets follows them, in that order.
    static func requestHeaders<Random: RandomSource>(
        _ head: HTTPRequestHead, authority: String, envelope: RequestEnvelope, origin: Origin,
        random: inout Random
    ) -> HTTPHeaders {
        var address: String?
        var inbound = false
        var meshPeer = false
        if case .inbound(let remote, let peer) = origin {
            inbound = true
            meshPeer = peer
            address = remote?.ipAddress
        }
        let dropExpect = envelope.expectsContinue
        var previousFor: [(String, String)] = []
        var forwardedProto = false
        var requestIDs = 0
        var requestIDValid = false
        var traceparent = false
        var fields = head.headers.forwardedFields(
            request: true, upgrade: envelope.upgrade, options: envelope.connection, extra: 8
        ) { kind, name, value in
            switch kind {
            case .host, .inboundPort:
                return false
            case .expect:
                return !dropExpect
            case .traceparent:
                traceparent = true
            case .requestID:
                requestIDs += 1
                requestIDValid = Self.isValidRequestID(value[...])
            case .forwardedProto:
                forwardedProto = true
                // A plaintext caller outside the mesh cannot claim a TLS hop.
                return !inbound || meshPeer
            case .forwardedFor where address != nil:
                previousFor.append((name, value))
                return false
            default:
                break
            }
            return true
        }.fields
        fields.append(("host", authority))
        if let address {
            let previous = HTTPHeaders(previousFor)[canonicalForm: "x-forwarded-for"].map(String.init)
            fields.append(("x-forwarded-for", (previous + [address]).joined(separator: ", ")))
        }
        if !inbound || meshPeer {
            if !forwardedProto {
                fields.append(("x-forwarded-proto", inbound ? "https" : "http"))
            }
        } else {
            fields.append(("x-forwarded-proto", "http"))
        }
        if requestIDs != 1 || !requestIDValid {
            if requestIDs > 0 {
                fields.removeAll { ForwardingField($0.0) == .requestID }
            }
            fields.append(("x-request-id", Self.newRequestID(using: &random)))
        }
        if !traceparent {
            fields.append(("traceparent", newTraceparent(using: &random)))
        }
        var headers = HTTPHeaders(fields)
        headers.addFraming(envelope.framing, method: head.method)
        return headers
    }

    static func isValidRequestID(_ value: Substring) -> Bool {
        !value.isEmpty && value.utf8.count <= Self.maxRequestIDLength
            && value.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }

    /// A random version 4 UUID, lowercase (`xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx`), written straight into the
    /// string's storage (one allocation).
    static func newRequestID<Random: RandomSource>(using random: inout Random) -> String {
        let high = (random.next() & 0xFFFF_FFFF_FFFF_0FFF) | 0x0000_0000_0000_4000
        let low = (random.next() & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000
        return String(unsafeUninitializedCapacity: 36) { buffer in
            // 8-4-4-4-12 hex digits: the high 64 bits give the first three groups, the low 64 bits the last two.
            var position = writeHex(high >> 32, digits: 8, into: buffer, at: 0)
            func group(_ value: UInt64, digits: Int) {
                buffer[position] = UInt8(ascii: "-")
                position = writeHex(value, digits: digits, into: buffer, at: position + 1)
            }
            group(high >> 16, digits: 4)
            group(high, digits: 4)
            group(low >> 48, digits: 4)
            group(low, digits: 12)
            return position
        }
    }
}
