import NIOHPACK

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// RFC 9113's rules for a request's header block (§8.2, §8.3) and its trailers, checked on the UTF-8 bytes in one
/// pass. The downstream HTTP/2 connection runs with NIOHTTP2's own header-block validation off: it checks every
/// block both ways through `String` comparisons (8 % of an h2c request's instructions, half of it on the response
/// blocks the proxy itself builds from parsed HTTP/1.1 or validated HTTP/2 heads); `HTTP2ServerStream` checks
/// the blocks that arrive with this instead, before anything is routed. The rules are NIOHTTP2's, which
/// `HTTP2RequestBlockTests` compares against over generated blocks:
///
/// - field names are lowercase tokens; pseudo-header fields come first, once each, and only `:method`, `:scheme`,
///   `:authority` and `:path` (no `:protocol`: the proxy does not offer extended CONNECT);
/// - `:method`, `:scheme` and `:path` are present (`:path` not empty), except on CONNECT, which has `:method` and
///   `:authority` only; pseudo-header values hold no control character, space or DEL;
/// - no connection-specific field (`connection`, `keep-alive`, `proxy-connection`, `transfer-encoding`, `upgrade`),
///   and `te` only as `trailers`;
/// - no field value holds NUL, CR or LF;
/// - trailers hold no pseudo-header field.
enum HTTP2RequestBlock {
    /// What is wrong with `block`, or nil when RFC 9113 allows it.
    static func violation(in block: HPACKHeaders, isTrailers: Bool) -> String? {
        var seen: UInt8 = 0
        var regularSeen = false
        var isConnect = false
        for (name, value, _) in block {
            let problem = HTTP1Head.withUTF8(name) { nameBytes -> String? in
                guard let first = nameBytes.first else {
                    return "an empty field name"
                }
                if first == UInt8(ascii: ":") {
                    guard !isTrailers else {
                        return "a pseudo-header field in trailers"
                    }
                    guard !regularSeen else {
                        return "a pseudo-header field after a regular field"
                    }
                    guard let pseudo = Pseudo(nameBytes) else {
                        return "an unknown pseudo-header field"
                    }
                    guard seen & pseudo.rawValue == 0 else {
                        return "a pseudo-header field twice"
                    }
                    seen |= pseudo.rawValue
                    return HTTP1Head.withUTF8(value) { valueBytes -> String? in
                        guard !valueBytes.contains(where: { $0 <= 0x20 || $0 == 0x7F }) else {
                            return "a control character or space in a pseudo-header value"
                        }
                        switch pseudo {
                        case .method:
                            isConnect = Self.equals(valueBytes, "CONNECT")
                        case .path where valueBytes.isEmpty:
                            return "an empty :path"
                        default:
                            break
                        }
                        return nil
                    }
                }
                regularSeen = true
                guard nameBytes.allSatisfy({ HTTP1Head.isTokenByte($0) && !(0x41...0x5A).contains($0) }) else {
                    return "a field name that is not a lowercase token"
                }
                if Self.isConnectionSpecific(nameBytes) {
                    return "a connection-specific field"
                }
                return HTTP1Head.withUTF8(value) { valueBytes -> String? in
                    if !isTrailers, Self.equals(nameBytes, "te"), !Self.equals(valueBytes, "trailers") {
                        return "te other than trailers"
                    }
                    guard !valueBytes.contains(where: { $0 == 0 || $0 == 0x0A || $0 == 0x0D }) else {
                        return "NUL, CR or LF in a field value"
                    }
                    return nil
                }
            }
            if let problem {
                return problem
            }
        }
        if isTrailers {
            return nil
        }
        let required = isConnect ? Pseudo.method.rawValue | Pseudo.authority.rawValue : Pseudo.requestRequired
        let allowed = isConnect ? required : Pseudo.requestRequired | Pseudo.authority.rawValue
        guard seen & required == required else {
            return "a required pseudo-header field missing"
        }
        guard seen & ~allowed == 0 else {
            return "a pseudo-header field CONNECT does not take"
        }
        return nil
    }

    private enum Pseudo: UInt8 {
        case method = 1
        case scheme = 2
        case authority = 4
        case path = 8

        static let requestRequired = Pseudo.method.rawValue | Pseudo.scheme.rawValue | Pseudo.path.rawValue

        init?(_ name: UnsafeBufferPointer<UInt8>) {
            switch name.count {
            case 5 where HTTP2RequestBlock.equals(name, ":path"): self = .path
            case 7 where HTTP2RequestBlock.equals(name, ":method"): self = .method
            case 7 where HTTP2RequestBlock.equals(name, ":scheme"): self = .scheme
            case 10 where HTTP2RequestBlock.equals(name, ":authority"): self = .authority
            default: return nil
            }
        }
    }

    /// RFC 9113 §8.2.2's connection-specific fields, ignoring ASCII case.
    static func isConnectionSpecific(_ name: UnsafeBufferPointer<UInt8>) -> Bool {
        switch name.count {
        case 7: return Self.equalsIgnoringCase(name, "upgrade")
        case 10: return Self.equalsIgnoringCase(name, "connection") || Self.equalsIgnoringCase(name, "keep-alive")
        case 16: return Self.equalsIgnoringCase(name, "proxy-connection")
        case 17: return Self.equalsIgnoringCase(name, "transfer-encoding")
        default: return false
        }
    }

    /// Whether `bytes` are `lowercase`'s bytes, ASCII capitals in `bytes` folded.
    static func equalsIgnoringCase(_ bytes: UnsafeBufferPointer<UInt8>, _ lowercase: StaticString) -> Bool {
        guard bytes.count == lowercase.utf8CodeUnitCount else {
            return false
        }
        let expected = UnsafeBufferPointer(start: lowercase.utf8Start, count: lowercase.utf8CodeUnitCount)
        for (byte, want) in zip(bytes, expected) where (byte &- 0x41 < 26 ? byte | 0x20 : byte) != want {
            return false
        }
        return true
    }

    /// Whether `bytes` are exactly `literal`'s (ASCII) bytes.
    @inline(__always)
    static func equals(_ bytes: UnsafeBufferPointer<UInt8>, _ literal: StaticString) -> Bool {
        guard bytes.count == literal.utf8CodeUnitCount else {
            return false
        }
        guard let base = bytes.baseAddress else {
            return true
        }
        return memcmp(base, literal.utf8Start, bytes.count) == 0
    }
}
