import ArgumentParser
import WeftProxy

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Runs iptables-save/iptables-restore (or the ip6tables ones) of one backend: nft when `iptables-nft-restore`
/// is installed, legacy otherwise (or the plain `iptables-restore` of an image that has only that).
struct IPTables {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    var backend: String
    /// The command prefix: "iptables-nft", "iptables-legacy" or "iptables".
    private var v4: String
    private var v6: String

    static let searchPath = ["/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin"]

    static func find(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"].map { $0.split(separator: ":").map(String.init) } ?? []
        for directory in path + Self.searchPath {
            let candidate = directory + "/" + name
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    static func detect() throws -> IPTables {
        for (backend, v4, v6) in [
            ("nft", "iptables-nft", "ip6tables-nft"), ("legacy", "iptables-legacy", "ip6tables-legacy"),
            ("default", "iptables", "ip6tables"),
        ] where Self.find(v4 + "-restore") != nil {
            return IPTables(backend: backend, v4: v4, v6: v6)
        }
        throw Failure(
            description: """
                weft-proxy init: iptables is not installed (no iptables-nft-restore, iptables-legacy-restore or \
                iptables-restore on PATH or in /usr/sbin, /sbin): the weft-init image needs the iptables package
                """)
    }

    /// True when the namespace has an IPv6 address other than loopback (`/proc/net/if_inet6`).
    static func namespaceHasIPv6() -> Bool {
        guard let text = try? String(contentsOfFile: "/proc/net/if_inet6", encoding: .utf8) else { return false }
        return text.split(separator: "\n").contains { !$0.hasSuffix(" lo") }
    }

    func apply(_ rules: CaptureRules, family: CaptureRules.Family) throws {
        let prefix = family == .ipv4 ? self.v4 : self.v6
        guard let save = Self.find(prefix + "-save"), let restore = Self.find(prefix + "-restore") else {
            throw Failure(description: "weft-proxy init: \(prefix)-save/-restore not found (the namespace has IPv6)")
        }
        let existing = try self.run(save, ["-t", "nat"], input: nil)
        _ = try self.run(restore, ["--noflush"], input: rules.restoreScript(family, existing: existing))
    }

    private func run(_ path: String, _ arguments: [String], input: String?) throws -> String {
        let result = try Spawn.run(path, arguments, input: Array((input ?? "").utf8))
        guard result.status == 0 else {
            let errors = String(decoding: result.errors, as: UTF8.self)
            let denied = ["Permission denied", "not permitted", "you must be root"].contains { errors.contains($0) }
            let hint = denied ? " (not permitted: weft-init needs the NET_ADMIN and NET_RAW capabilities)" : ""
            throw Failure(
                description: "weft-proxy init: \(path) \(arguments.joined(separator: " ")) failed\(hint): \(errors)")
        }
        return String(decoding: result.output, as: UTF8.self)
    }
}
