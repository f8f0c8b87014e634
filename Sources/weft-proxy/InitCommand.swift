import ArgumentParser
import WeftProxy

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `weft-proxy init`: installs the capture rules (`CaptureRules`) in this network namespace, as the injected
/// `weft-init` init container runs it (with NET_ADMIN and NET_RAW).
struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Installs the iptables rules that send the pod's TCP through the proxy (run by weft-init).",
        discussion: """
            Outbound TCP goes to --outbound-port except the proxy's own (--proxy-uid), to loopback, and to the \
            excluded CIDRs and ports; inbound TCP goes to --inbound-port except the excluded ports and the \
            proxy's own (admin 15000, status 15020, and the two listeners). The rules live in the nat table's \
            WEFT_* chains, which every run flushes and refills: running it twice is the same as once. IPv6 rules \
            are installed with ip6tables when the namespace has IPv6 addresses. Uses iptables-nft when present, \
            iptables-legacy otherwise.
            """
    )

    @Option(help: "The proxy's UID: its own connections are never captured.")
    var proxyUID: Int = 1337

    @Option(help: "The outbound listener's port.")
    var outboundPort: Int = 15001

    @Option(help: "The inbound listener's port.")
    var inboundPort: Int = 15006

    @Option(help: "Comma-separated ports inbound capture leaves alone (the status port 15020 among them).")
    var excludeInboundPorts: String = "15020"

    @Option(help: "Comma-separated destination ports outbound capture leaves alone.")
    var excludeOutboundPorts: String = ""

    @Option(help: "Comma-separated destination CIDRs (IPv4 or IPv6) outbound capture leaves alone.")
    var excludeOutboundCidrs: String = ""

    @Flag(help: "Print the iptables-restore input (IPv4, then IPv6) instead of applying it.")
    var dryRun = false

    func run() throws {
        let rules = try self.rules()
        if self.dryRun {
            print("# iptables-restore --noflush (IPv4)")
            print(rules.restoreScript(.ipv4), terminator: "")
            print("# ip6tables-restore --noflush (IPv6)")
            print(rules.restoreScript(.ipv6), terminator: "")
            return
        }
        let tables = try IPTables.detect()
        try tables.apply(rules, family: .ipv4)
        if IPTables.namespaceHasIPv6() {
            try tables.apply(rules, family: .ipv6)
        }
        print("weft-proxy init: capture rules installed (\(tables.backend))")
    }

    func rules() throws -> CaptureRules {
        func value<T>(_ result: Result<T, CaptureRulesError>, _ flag: String) throws -> T {
            switch result {
            case .success(let value): return value
            case .failure(let error): throw ValidationError("--\(flag): \(error)")
            }
        }
        for (flag, port) in [("proxy-uid", self.proxyUID), ("outbound-port", self.outboundPort)]
        where port < 0 || port > 65535 {
            throw ValidationError("--\(flag): \(port) is out of range")
        }
        guard (1...65535).contains(self.inboundPort) else {
            throw ValidationError("--inbound-port: \(self.inboundPort) is out of range")
        }
        return CaptureRules(
            proxyUID: self.proxyUID, outboundPort: self.outboundPort, inboundPort: self.inboundPort,
            excludeInboundPorts: try value(CaptureRules.ports(self.excludeInboundPorts), "exclude-inbound-ports"),
            excludeOutboundPorts: try value(CaptureRules.ports(self.excludeOutboundPorts), "exclude-outbound-ports"),
            excludeOutboundCIDRs: try value(CaptureRules.cidrs(self.excludeOutboundCidrs), "exclude-outbound-cidrs")
        )
    }
}
