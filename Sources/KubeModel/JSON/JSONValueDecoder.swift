/// Decodes `Decodable` values from a `JSONValue` tree.
///
/// It is what lets `Extensible` see which members a type read, so that the rest can be kept:
/// decoding a subtree costs nothing extra, where going back through `JSONDecoder` at every level would.
public struct JSONValueDecoder: Sendable {
    public init() {}

    /// Decodes `type` from `value`; errors are `DecodingError`s whose coding path is the field path.
    public func decode<T: Decodable>(_ type: T.Type, from value: JSONValue) throws -> T {
        try T(from: JSONValueDecoderImpl(value: value, codingPath: []))
    }
}

/// Records the member names a keyed container was asked about.
final class KeyTracker {
    var keys: Set<String> = []
}

final class JSONValueDecoderImpl: Decoder {
    let value: JSONValue
    let codingPath: [any CodingKey]
    let tracker: KeyTracker?
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init(value: JSONValue, codingPath: [any CodingKey], tracker: KeyTracker? = nil) {
        self.value = value
        self.codingPath = codingPath
        self.tracker = tracker
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let members) = self.value else {
            throw DecodingError.typeMismatch(
                [String: JSONValue].self,
                .init(
                    codingPath: self.codingPath,
                    debugDescription: "expected an object, found \(self.value.kindDescription)")
            )
        }
        return KeyedDecodingContainer(
            KeyedContainer<Key>(members: members, codingPath: self.codingPath, tracker: self.tracker)
        )
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .array(let elements) = self.value else {
            throw DecodingError.typeMismatch(
                [JSONValue].self,
                .init(
                    codingPath: self.codingPath,
                    debugDescription: "expected an array, found \(self.value.kindDescription)")
            )
        }
        return UnkeyedContainer(elements: elements, codingPath: self.codingPath)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        SingleValueContainer(value: self.value, codingPath: self.codingPath)
    }
}

// MARK: - Scalars

private func mismatch<T>(
    _ type: T.Type, _ value: JSONValue, _ path: [any CodingKey], _ expected: String
) -> DecodingError {
    DecodingError.typeMismatch(
        type,
        .init(codingPath: path, debugDescription: "expected \(expected), found \(value.kindDescription)")
    )
}

private func decodeScalar<T: Decodable>(_ type: T.Type, from value: JSONValue, path: [any CodingKey]) throws -> T {
    switch type {
    case is String.Type:
        guard case .string(let string) = value else { throw mismatch(type, value, path, "a string") }
        return try cast(string, path)
    case is Bool.Type:
        guard case .bool(let bool) = value else { throw mismatch(type, value, path, "a boolean") }
        return try cast(bool, path)
    case is Double.Type:
        switch value {
        case .int(let int): return try cast(Double(int), path)
        case .double(let double): return try cast(double, path)
        default: throw mismatch(type, value, path, "a number")
        }
    case is Float.Type:
        switch value {
        case .int(let int): return try cast(Float(int), path)
        case .double(let double): return try cast(Float(double), path)
        default: throw mismatch(type, value, path, "a number")
        }
    case is Int.Type: return try cast(Int(try integer(value, path, Int64(Int.min), Int64(Int.max))), path)
    case is Int64.Type: return try cast(try integer(value, path, Int64.min, Int64.max), path)
    case is Int32.Type: return try cast(Int32(try integer(value, path, Int64(Int32.min), Int64(Int32.max))), path)
    case is UInt32.Type: return try cast(UInt32(try integer(value, path, 0, Int64(UInt32.max))), path)
    case is UInt16.Type: return try cast(UInt16(try integer(value, path, 0, Int64(UInt16.max))), path)
    case is UInt64.Type: return try cast(UInt64(try integer(value, path, 0, Int64.max)), path)
    case is UInt.Type: return try cast(UInt(try integer(value, path, 0, Int64.max)), path)
    default:
        return try T(from: JSONValueDecoderImpl(value: value, codingPath: path))
    }
}

private func integer(_ value: JSONValue, _ path: [any CodingKey], _ low: Int64, _ high: Int64) throws -> Int64 {
    let result: Int64
    switch value {
    case .int(let int): result = int
    case .double(let double) where double.rounded() == double && abs(double) < 9.2e18: result = Int64(double)
    default: throw mismatch(Int64.self, value, path, "an integer")
    }
    guard result >= low, result <= high else {
        throw DecodingError.dataCorrupted(
            .init(codingPath: path, debugDescription: "\(result) is out of range \(low)...\(high)")
        )
    }
    return result
}

private func cast<T, U>(_ value: U, _ path: [any CodingKey]) throws -> T {
    guard let result = value as? T else {
        throw DecodingError.dataCorrupted(.init(codingPath: path, debugDescription: "internal type mismatch"))
    }
    return result
}

// MARK: - Containers

private struct KeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let members: JSONObject
    let codingPath: [any CodingKey]
    let tracker: KeyTracker?

    var allKeys: [Key] { self.members.keys.sorted().compactMap { Key(stringValue: $0) } }

    func contains(_ key: Key) -> Bool {
        self.tracker?.keys.insert(key.stringValue)
        return self.members[key.stringValue] != nil
    }

    private func member(_ key: Key) throws -> JSONValue {
        self.tracker?.keys.insert(key.stringValue)
        guard let value = self.members[key.stringValue] else {
            throw DecodingError.keyNotFound(
                key,
                .init(codingPath: self.codingPath, debugDescription: "required field \"\(key.stringValue)\" is missing")
            )
        }
        return value
    }

    func decodeNil(forKey key: Key) throws -> Bool {
        try self.member(key) == .null
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try decodeScalar(type, from: try self.member(key), path: self.codingPath + [key])
    }

    func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type,
        forKey key: Key
    ) throws -> KeyedDecodingContainer<NestedKey> {
        try JSONValueDecoderImpl(value: try self.member(key), codingPath: self.codingPath + [key])
            .container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try JSONValueDecoderImpl(value: try self.member(key), codingPath: self.codingPath + [key]).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder {
        JSONValueDecoderImpl(value: .object(self.members), codingPath: self.codingPath)
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        JSONValueDecoderImpl(value: try self.member(key), codingPath: self.codingPath + [key])
    }
}

private struct UnkeyedContainer: UnkeyedDecodingContainer {
    let elements: [JSONValue]
    let codingPath: [any CodingKey]
    var currentIndex = 0

    init(elements: [JSONValue], codingPath: [any CodingKey]) {
        self.elements = elements
        self.codingPath = codingPath
    }

    var count: Int? { self.elements.count }
    var isAtEnd: Bool { self.currentIndex >= self.elements.count }

    private mutating func next() throws -> (JSONValue, [any CodingKey]) {
        guard !self.isAtEnd else {
            throw DecodingError.valueNotFound(
                JSONValue.self,
                .init(codingPath: self.codingPath, debugDescription: "unexpected end of array")
            )
        }
        let path = self.codingPath + [AnyCodingKey(intValue: self.currentIndex)]
        let value = self.elements[self.currentIndex]
        self.currentIndex += 1
        return (value, path)
    }

    mutating func decodeNil() throws -> Bool {
        guard !self.isAtEnd, self.elements[self.currentIndex] == .null else { return false }
        self.currentIndex += 1
        return true
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let (value, path) = try self.next()
        return try decodeScalar(type, from: value, path: path)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type
    ) throws -> KeyedDecodingContainer<NestedKey> {
        let (value, path) = try self.next()
        return try JSONValueDecoderImpl(value: value, codingPath: path).container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let (value, path) = try self.next()
        return try JSONValueDecoderImpl(value: value, codingPath: path).unkeyedContainer()
    }

    mutating func superDecoder() throws -> any Decoder {
        let (value, path) = try self.next()
        return JSONValueDecoderImpl(value: value, codingPath: path)
    }
}

private struct SingleValueContainer: SingleValueDecodingContainer {
    let value: JSONValue
    let codingPath: [any CodingKey]

    func decodeNil() -> Bool { self.value == .null }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try decodeScalar(type, from: self.value, path: self.codingPath)
    }
}
