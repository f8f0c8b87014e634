import NIOCore

#if canImport(Glibc)
import Glibc

/// The destination a connection was meant for before `weft-proxy init`'s REDIRECT rule sent it to this listener:
/// `getsockopt(SO_ORIGINAL_DST)` (IPv4, level SOL_IP) or `IP6T_SO_ORIGINAL_DST` (IPv6, level SOL_IPV6) on the
/// accepted socket, read through NIO's `SocketOptionProvider`. Nil when the connection was not redirected (the
/// kernel answers ENOENT), as on the explicit-mode listeners of the tests and the demo.
public enum OriginalDestination {
    /// SO_ORIGINAL_DST (linux/netfilter_ipv4.h) and IP6T_SO_ORIGINAL_DST (linux/netfilter_ipv6/ip6_tables.h).
    static let optionName: SocketOptionName = 80
    static let solIP: SocketOptionLevel = 0
    static let solIPv6: SocketOptionLevel = 41

    public static func read(_ channel: any Channel) -> EventLoopFuture<SocketAddress?> {
        guard let provider = channel as? any SocketOptionProvider, let local = channel.localAddress else {
            return channel.eventLoop.makeSucceededFuture(nil)
        }
        switch local {
        case .v4:
            let future: EventLoopFuture<sockaddr_in> = provider.unsafeGetSocketOption(
                level: Self.solIP, name: Self.optionName)
            return future.map { Optional(SocketAddress($0, host: "")) }.recover { _ -> SocketAddress? in nil }
        case .v6:
            let future: EventLoopFuture<sockaddr_in6> = provider.unsafeGetSocketOption(
                level: Self.solIPv6, name: Self.optionName)
            return future.map { Optional(SocketAddress($0, host: "")) }.recover { _ -> SocketAddress? in nil }
        case .unixDomainSocket:
            return channel.eventLoop.makeSucceededFuture(nil)
        }
    }
}
#endif
