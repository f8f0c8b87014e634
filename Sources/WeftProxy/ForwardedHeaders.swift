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

    static func apply<Random: RandomSource>(to headers: inout HTTPHeaders, origin: Origin, random: inout Random) {
        switch origin {
        case .outbound:
            if !headers.contains(name: "x-forwarded-proto") {
                headers.add(name: "x-forwarded-proto", value: "http")
            }
        case .inbound(let remote, let meshPeer):
            if let address = remote?.ipAddress {
                let previous = headers[canonicalForm: "x-forwarded-for"].map(String.init)
                headers.remove(name: "x-forwarded-for")
                headers.add(name: "x-forwarded-for", value: (previous + [address]).joined(separator: ", "))
            }
            if meshPeer {
                if !headers.contains(name: "x-forwarded-proto") {
                    headers.add(name: "x-forwarded-proto", value: "https")
                }
            } else {
                headers.replaceOrAdd(name: "x-forwarded-proto", value: "http")
            }
        }
        // One pass, no array: this runs on every request.
        var ids = 0
        var valid = false
        for field in headers where field.name.utf8.count == 12 && field.name.equalsIgnoringASCIICase("x-request-id") {
            ids += 1
            valid = Self.isValidRequestID(field.value[...])
        }
        if ids != 1 || !valid {
            headers.replaceOrAdd(name: "x-request-id", value: Self.newRequestID(using: &random))
        }
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
