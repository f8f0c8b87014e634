#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension ProxyConfig {
    /// The canonical JSON: sorted keys, pretty-printed, no escaped slashes. Equal configs give equal bytes.
    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    /// The canonical JSON without whitespace: what the push stream carries (equal configs give equal bytes).
    public func encodedCompact() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    /// Decodes a config, e.g. the output of `weftctl compile` or a push from the controller.
    public static func decode(_ data: Data) throws -> ProxyConfig {
        try JSONDecoder().decode(ProxyConfig.self, from: data)
    }

    /// The content hash of everything but `version`: `stableHash(of:)` of the config without it.
    public func contentHash() throws -> String {
        var copy = self
        copy.version = ""
        return stableHash(of: copy)
    }

    /// This config with `version` set to its content hash.
    public func versioned() throws -> ProxyConfig {
        var copy = self
        copy.version = try self.contentHash()
        return copy
    }
}

/// A stable hash of a value's canonical JSON (16 hex digits of FNV-1a 64): the same across processes and
/// machines, unlike `Hasher`. Used for config versions.
public func stableHash<T: Encodable>(of value: T) -> String {
    hexHash(stableHash64(of: value))
}

/// `stableHash(of:)` as a number, for combining.
public func stableHash64<T: Encodable>(of value: T) -> UInt64 {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    var hash = FNV1a()
    hash.combine(bytes: (try? encoder.encode(value)) ?? Data())
    return hash.value
}

/// FNV-1a 64: a tiny, stable (across processes and machines) hash for content versions. Not for security.
public struct FNV1a: Sendable {
    public private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    public init() {}

    public mutating func combine(bytes: some Sequence<UInt8>) {
        for byte in bytes {
            self.combine(byte)
        }
    }

    public mutating func combine(_ byte: UInt8) {
        self.value ^= UInt64(byte)
        self.value = self.value &* 0x0000_0100_0000_01b3
    }

    /// The eight bytes of `number`, least significant first.
    public mutating func combine(_ number: UInt64) {
        var rest = number
        for _ in 0..<8 {
            self.combine(UInt8(truncatingIfNeeded: rest))
            rest >>= 8
        }
    }
}

/// A hash as 16 lowercase hex digits.
public func hexHash(_ hash: UInt64) -> String {
    let hex = String(hash, radix: 16)
    return String(repeating: "0", count: 16 - hex.count) + hex
}
