#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The iptables rules `weft-proxy init` installs in a pod's network namespace (the `nat` table), as a pure value:
/// given the options and what `iptables-save -t nat` printed, it returns the `iptables-restore --noflush` input.
///
/// Outbound: TCP the pod sends goes to the outbound listener, except the proxy's own traffic (its UID), loopback
/// destinations, and the excluded CIDRs and ports. Inbound: TCP arriving at the pod goes to the inbound listener,
/// except the excluded ports and the proxy's own ports. All rules live in Weft's own chains (`WEFT_*`), which a
/// run flushes and refills, and the jumps to them from `PREROUTING`/`OUTPUT` are deleted before they are added
/// again, so running it twice leaves the same table as running it once.
public struct CaptureRules: Sendable, Equatable {
    public enum Family: Sendable, Equatable { case ipv4, ipv6 }

    public static let inboundChain = "WEFT_INBOUND"
    public static let inboundRedirectChain = "WEFT_IN_REDIRECT"
    public static let outboundChain = "WEFT_OUTPUT"
    public static let outboundRedirectChain = "WEFT_REDIRECT"

    public var proxyUID: Int
    public var outboundPort: Int
    public var inboundPort: Int
    /// The proxy's own ports (admin, status, and the two listeners are added): never captured inbound.
    public var proxyPorts: [Int]
    public var excludeInboundPorts: [Int]
    public var excludeOutboundPorts: [Int]
    /// CIDRs, IPv4 and IPv6 mixed: each family's rules take its own.
    public var excludeOutboundCIDRs: [String]

    public init(
        proxyUID: Int = 1337, outboundPort: Int = 15001, inboundPort: Int = 15006, proxyPorts: [Int] = [15000, 15020],
        excludeInboundPorts: [Int] = [], excludeOutboundPorts: [Int] = [], excludeOutboundCIDRs: [String] = []
    ) {
        self.proxyUID = proxyUID
        self.outboundPort = outboundPort
        self.inboundPort = inboundPort
        self.proxyPorts = proxyPorts
        self.excludeInboundPorts = excludeInboundPorts
        self.excludeOutboundPorts = excludeOutboundPorts
        self.excludeOutboundCIDRs = excludeOutboundCIDRs
    }

    /// The ports inbound capture leaves alone, in order, without repeats.
    public var inboundExemptPorts: [Int] {
        var seen = Set<Int>()
        return (self.proxyPorts + [self.outboundPort, self.inboundPort] + self.excludeInboundPorts).filter {
            seen.insert($0).inserted
        }
    }

    /// The excluded CIDRs of one family (an IPv6 CIDR contains `:`).
    public func cidrs(_ family: Family) -> [String] {
        self.excludeOutboundCIDRs.filter { $0.contains(":") == (family == .ipv6) }
    }

    /// The rules proper (without the table header, chain declarations or COMMIT), as `iptables-save` prints them.
    public func rules(_ family: Family) -> [String] {
        var rules: [String] = []
        let inbound = Self.inboundChain
        let outbound = Self.outboundChain
        for port in self.inboundExemptPorts {
            rules.append("-A \(inbound) -p tcp -m tcp --dport \(port) -j RETURN")
        }
        rules.append("-A \(inbound) -p tcp -j \(Self.inboundRedirectChain)")
        rules.append("-A \(Self.inboundRedirectChain) -p tcp -j REDIRECT --to-ports \(self.inboundPort)")
        rules.append("-A \(outbound) -m owner --uid-owner \(self.proxyUID) -j RETURN")
        rules.append("-A \(outbound) -d \(family == .ipv4 ? "127.0.0.0/8" : "::1/128") -j RETURN")
        for cidr in self.cidrs(family) {
            rules.append("-A \(outbound) -d \(cidr) -j RETURN")
        }
        for port in self.excludeOutboundPorts {
            rules.append("-A \(outbound) -p tcp -m tcp --dport \(port) -j RETURN")
        }
        rules.append("-A \(outbound) -p tcp -j \(Self.outboundRedirectChain)")
        rules.append("-A \(Self.outboundRedirectChain) -p tcp -j REDIRECT --to-ports \(self.outboundPort)")
        rules.append("-A PREROUTING -p tcp -j \(inbound)")
        rules.append("-A OUTPUT -p tcp -j \(outbound)")
        return rules
    }

    /// The `iptables-restore --noflush` input. `existing` is what `iptables-save -t nat` printed (empty for a fresh
    /// namespace or a dry run): every jump from a built-in chain to a `WEFT_` chain in it is deleted first, and
    /// declaring the `WEFT_` chains flushes them, so the result replaces an earlier run's rules instead of adding.
    public func restoreScript(_ family: Family, existing: String = "") -> String {
        var lines = ["*nat"]
        for chain in [Self.inboundChain, Self.inboundRedirectChain, Self.outboundChain, Self.outboundRedirectChain] {
            lines.append(":\(chain) - [0:0]")
        }
        for line in existing.split(separator: "\n") where Self.isJumpToWeft(line) {
            lines.append("-D" + line.dropFirst(2))
        }
        lines += self.rules(family)
        lines.append("COMMIT")
        return lines.joined(separator: "\n") + "\n"
    }

    static func isJumpToWeft(_ line: Substring) -> Bool {
        let builtIn = line.hasPrefix("-A PREROUTING ") || line.hasPrefix("-A OUTPUT ")
        return builtIn && line.contains(" -j WEFT_")
    }

    /// Parses a comma-separated list of ports (`15020,8080`); a failure names the first bad item.
    public static func ports(_ list: String) -> Result<[Int], CaptureRulesError> {
        var ports: [Int] = []
        for item in list.split(separator: ",").map({ String($0.trimmedWhitespace) }) where !item.isEmpty {
            guard let port = Int(item), (1...65535).contains(port) else { return .failure(.badPort(item)) }
            ports.append(port)
        }
        return .success(ports)
    }

    /// Parses a comma-separated list of CIDRs (`10.0.0.0/8,fd00::/8`), checking each one's shape.
    public static func cidrs(_ list: String) -> Result<[String], CaptureRulesError> {
        var cidrs: [String] = []
        for item in list.split(separator: ",").map({ String($0.trimmedWhitespace) }) where !item.isEmpty {
            let parts = item.split(separator: "/", omittingEmptySubsequences: false)
            let isV6 = item.contains(":")
            guard parts.count == 2, let bits = Int(parts[1]), (0...(isV6 ? 128 : 32)).contains(bits),
                Self.isAddress(parts[0], v6: isV6)
            else { return .failure(.badCIDR(item)) }
            cidrs.append(item)
        }
        return .success(cidrs)
    }

    private static func isAddress(_ text: Substring, v6: Bool) -> Bool {
        if v6 {
            return !text.isEmpty && text.allSatisfy { $0 == ":" || $0.isHexDigit }
        }
        let octets = text.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets.allSatisfy { UInt8($0) != nil }
    }
}

public enum CaptureRulesError: Error, Equatable, CustomStringConvertible {
    case badPort(String)
    case badCIDR(String)

    public var description: String {
        switch self {
        case .badPort(let item): "'\(item)' is not a port (1-65535)"
        case .badCIDR(let item): "'\(item)' is not a CIDR (ADDRESS/BITS, IPv4 or IPv6)"
        }
    }
}
