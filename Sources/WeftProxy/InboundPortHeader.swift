import NIOCore

/// `x-weft-inbound-port`: which inbound port a request to the inbound listener is for, until transparent capture
/// gives the original destination port (temporary; see README).
///
/// The rule: only a client on the pod's own loopback (127.0.0.0/8 or ::1) may choose the port with it, which is
/// the explicit mode's use (a local caller, or a test, addressing one app port). A peer proxy never can: the
/// outbound side removes the header from every request it forwards, and the inbound side ignores it from any other
/// address (the request goes to the first inbound port) and never passes it to the app.
enum InboundPortHeader {
    static let name = "x-weft-inbound-port"

    /// Whether a request from `remoteAddress` may choose its inbound port.
    static func isHonoured(from remoteAddress: SocketAddress?) -> Bool {
        switch remoteAddress {
        case .v4(let address):
            // sin_addr is in network byte order: the first octet is the lowest byte in memory.
            return withUnsafeBytes(of: address.address.sin_addr) { $0.first == 127 }
        case .v6(let address):
            return withUnsafeBytes(of: address.address.sin6_addr) { bytes in
                bytes.prefix(15).allSatisfy { $0 == 0 } && bytes.last == 1
            }
        case .unixDomainSocket, nil:
            return false
        }
    }
}
