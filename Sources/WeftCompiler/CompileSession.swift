import ProxyConfig

/// A compiler that remembers work between compiles of successive snapshots, for the controller.
///
/// It only memoises pure functions of values (a config fragment's stable hash, keyed by the fragment itself),
/// so its results are identical to `WeftCompiler.compile`; it just gets there faster when little changed.
public struct CompileSession: Sendable {
    var memo = HashMemo()

    public init() {}

    public mutating func compile(_ snapshot: WeftSnapshot) -> CompileResult {
        var compilation = WeftCompilation(snapshot)
        let result = compilation.run(snapshot, memo: &self.memo)
        self.memo.endGeneration()
        return result
    }
}

extension WeftCompiler {
    /// A session that reuses work across compiles.
    public func session() -> CompileSession { CompileSession() }
}

/// Stable hashes of config fragments, keyed by the fragment. Entries not used in a compile are dropped after
/// it, so the memo never outgrows one cluster's worth of fragments.
struct HashMemo: Sendable {
    private var outbound: [OutboundService: String] = [:]
    private var clusters: [Cluster: String] = [:]
    private var inbound: [[InboundPort]: String] = [:]
    private var usedOutbound: [OutboundService: String] = [:]
    private var usedClusters: [Cluster: String] = [:]
    private var usedInbound: [[InboundPort]: String] = [:]

    mutating func hash(_ value: OutboundService) -> String {
        let hash = self.outbound[value] ?? self.usedOutbound[value] ?? stableHash(of: value)
        self.usedOutbound[value] = hash
        return hash
    }

    mutating func hash(_ value: Cluster) -> String {
        let hash = self.clusters[value] ?? self.usedClusters[value] ?? stableHash(of: value)
        self.usedClusters[value] = hash
        return hash
    }

    mutating func hash(_ value: [InboundPort]) -> String {
        let hash = self.inbound[value] ?? self.usedInbound[value] ?? stableHash(of: value)
        self.usedInbound[value] = hash
        return hash
    }

    mutating func endGeneration() {
        self.outbound = self.usedOutbound
        self.clusters = self.usedClusters
        self.inbound = self.usedInbound
        self.usedOutbound = [:]
        self.usedClusters = [:]
        self.usedInbound = [:]
    }
}

/// FNV-1a 64 of strings joined by a separator, as 16 hex digits: combines fragment hashes.
func combinedHash(_ parts: [String]) -> String {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for part in parts {
        for byte in part.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        hash ^= 0x1f
        hash = hash &* 0x0000_0100_0000_01b3
    }
    let hex = String(hash, radix: 16)
    return String(repeating: "0", count: 16 - hex.count) + hex
}
