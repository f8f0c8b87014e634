/// A consistent-hash ring over a cluster's endpoints, built once per config.
///
/// Each endpoint owns `weight × pointsPerWeight` points, the hashes of `"address:port#i"`.
/// `pointsPerWeight` is the smallest power of two that gives at least `minimumSize` points in all, so the
/// same endpoint keeps the same points when another endpoint joins or leaves (unless that crosses a power
/// of two): removing one of n endpoints moves only the keys it owned, about 1/n of them.
struct HashRing: Sendable {
    /// The largest ring built, as Envoy caps it.
    static let maximumSize = 1 << 23
    /// Weights above this count as this, which bounds the ring at 65,536 endpoints of the largest weight.
    static let maximumWeight = 128
    /// The ring size when the config does not say.
    static let defaultMinimumSize = 1024

    /// Point hashes, ascending.
    private(set) var hashes: [UInt64] = []
    /// `owners[i]` is the endpoint index owning `hashes[i]`.
    private(set) var owners: [Int32] = []

    var isEmpty: Bool { self.hashes.isEmpty }

    init() {}

    init(endpoints: [(address: String, port: Int, weight: Int)], minimumSize: Int) {
        guard !endpoints.isEmpty, endpoints.count <= Int(Int32.max) else { return }
        let weights = endpoints.map { min(max($0.weight, 1), Self.maximumWeight) }
        let totalWeight = weights.reduce(0, +)
        let target = min(max(minimumSize, 1), Self.maximumSize)
        var pointsPerWeight = 1
        while pointsPerWeight * totalWeight < target { pointsPerWeight <<= 1 }
        while pointsPerWeight > 1 && pointsPerWeight * totalWeight > Self.maximumSize { pointsPerWeight >>= 1 }

        var points: [(hash: UInt64, owner: Int32)] = []
        points.reserveCapacity(pointsPerWeight * totalWeight)
        for (index, endpoint) in endpoints.enumerated() {
            let prefix = "\(endpoint.address):\(endpoint.port)#"
            for point in 0..<(weights[index] * pointsPerWeight) {
                let hash = Self.hash("\(prefix)\(point)".utf8)
                points.append((hash, Int32(truncatingIfNeeded: index)))
            }
        }
        points.sort { $0.hash < $1.hash || ($0.hash == $1.hash && $0.owner < $1.owner) }
        self.hashes = points.map(\.hash)
        self.owners = points.map(\.owner)
    }

    /// The position of the first point at or after `hash`, wrapping to 0 past the end.
    func firstPosition(atOrAfter hash: UInt64) -> Int {
        var low = 0
        var high = self.hashes.count
        while low < high {
            let middle = (low + high) >> 1
            if self.hashes[middle] < hash { low = middle + 1 } else { high = middle }
        }
        return low == self.hashes.count ? 0 : low
    }

    /// FNV-1a (64 bit) followed by the MurmurHash3 finalizer for a good avalanche on short, similar keys.
    /// Stable across processes and platforms: every proxy puts a key on the same endpoint.
    static func hash<Bytes: Sequence>(_ bytes: Bytes) -> UInt64 where Bytes.Element == UInt8 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01B3
        }
        hash ^= hash >> 33
        hash &*= 0xFF51_AFD7_ED55_8CCD
        hash ^= hash >> 33
        hash &*= 0xC4CE_B9FE_1A85_EC53
        hash ^= hash >> 33
        return hash
    }
}
