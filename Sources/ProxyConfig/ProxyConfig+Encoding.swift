import Foundation

extension ProxyConfig {
    /// The canonical JSON: sorted keys, pretty-printed, no escaped slashes. Equal configs give equal bytes.
    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    /// Decodes a config, e.g. the output of `weftctl compile` or a push from the controller.
    public static func decode(_ data: Data) throws -> ProxyConfig {
        try JSONDecoder().decode(ProxyConfig.self, from: data)
    }

    /// The content hash of everything but `version`: 16 hex digits of FNV-1a 64 over the canonical JSON.
    public func contentHash() throws -> String {
        var copy = self
        copy.version = ""
        let bytes = try copy.encoded()
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
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
    let bytes = (try? encoder.encode(value)) ?? Data()
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in bytes {
        hash ^= UInt64(byte)
        hash = hash &* 0x0000_0100_0000_01b3
    }
    return hash
}

/// A hash as 16 lowercase hex digits.
public func hexHash(_ hash: UInt64) -> String {
    let hex = String(hash, radix: 16)
    return String(repeating: "0", count: 16 - hex.count) + hex
}
