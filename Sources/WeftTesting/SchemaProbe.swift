public import KubeModel

/// Finds every field a `Decodable` type reads, by decoding it from a decoder that has every field.
///
/// The probe answers "yes" to every `contains`, and gives placeholder values: `"x"` for strings, `1` for numbers,
/// `true` for booleans, arrays of one element, and dictionaries with the one key `"key"`. Meanwhile it records
/// each field path the type asked for, so the result is the type's schema as its `Decodable` conformance sees it
/// (synthesised or hand-written `CodingKeys` alike). `CRDSchemaTests` compares it with the CRD's OpenAPI schema.
///
/// ## Path notation
///
/// One path per node of the schema tree:
/// - a member `name` of an object at `p` is `p.name` (just `name` at the top);
/// - the elements of an array at `p` are `p[]`;
/// - the values of a map (`[String: X]`) at `p` are `p{}`.
///
/// So `VirtualService` yields, among others, `spec`, `spec.hosts`, `spec.hosts[]`, `spec.http[].match[].headers`,
/// `spec.http[].match[].headers{}` and `spec.http[].match[].headers{}.exact`. `scalarTypes` gives the JSON type
/// of each leaf in OpenAPI terms: `string`, `boolean`, `number`, `integer/int32` or `integer/int64`, and
/// `requiredPaths` the members read without `contains` first (non-optional properties; map values never count).
///
/// Recursive types are cut at `maxDepth` path segments: from there on, optional members read as absent and arrays
/// and maps as empty, and only required members are read. A type that still requires members at twice that depth
/// (it cannot be decoded from any finite document) throws ``SchemaProbeError``.
///
/// Types whose decoding needs real data opt in with ``SchemaProbeDecodable``: `Extensible` (probed through its
/// fields), `JSONValue` (`.null`) and `meta.v1.Condition.Status` conform here, and enums that are `CaseIterable`
/// and `RawRepresentable` get their first case.
public struct SchemaProbe: Sendable {
    /// What the probe saw.
    public struct Result: Sendable, Hashable {
        /// Every node path, in the notation described on ``SchemaProbe``.
        public var paths: Set<String>
        /// The OpenAPI type of each scalar leaf: `string`, `boolean`, `number`, `integer/int32`, `integer/int64`.
        public var scalarTypes: [String: String]
        /// The members read without asking first whether they are there: non-optional properties.
        public var requiredPaths: Set<String>

        public init(paths: Set<String> = [], scalarTypes: [String: String] = [:], requiredPaths: Set<String> = []) {
            self.paths = paths
            self.scalarTypes = scalarTypes
            self.requiredPaths = requiredPaths
        }

        /// The paths at or below `root` (a path in the same notation, e.g. `spec`).
        public func paths(under root: String) -> Set<String> {
            self.paths.filter { SchemaProbe.path($0, isUnder: root) }
        }

        /// The scalar types of the leaves at or below `root`.
        public func scalarTypes(under root: String) -> [String: String] {
            self.scalarTypes.filter { SchemaProbe.path($0.key, isUnder: root) }
        }

        /// The required members at or below `root`.
        public func requiredPaths(under root: String) -> Set<String> {
            self.requiredPaths.filter { SchemaProbe.path($0, isUnder: root) }
        }
    }

    /// Path segments beyond which recursion stops.
    public var maxDepth: Int

    public init(maxDepth: Int = 32) {
        self.maxDepth = maxDepth
    }

    /// Decodes `type` from the probe and returns the paths it read.
    public func probe<T: Decodable>(_ type: T.Type) throws -> Result {
        let recorder = ProbeRecorder(maxDepth: self.maxDepth)
        let decoder = ProbeDecoder(recorder: recorder, path: "", depth: 0, codingPath: [])
        _ = try decoder.make(type)
        return Result(paths: recorder.paths, scalarTypes: recorder.scalarTypes, requiredPaths: recorder.requiredPaths)
    }

    /// Whether `path` is `root` itself or a node below it.
    public static func path(_ path: String, isUnder root: String) -> Bool {
        guard path.hasPrefix(root) else { return false }
        let rest = path.dropFirst(root.count)
        guard let next = rest.first else { return true }
        return root.isEmpty || next == "." || next == "[" || next == "{"
    }

    /// `parent` joined with a member name.
    public static func member(_ name: String, of parent: String) -> String {
        parent.isEmpty ? name : "\(parent).\(name)"
    }
}

/// Why a type could not be probed.
public struct SchemaProbeError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Value: Hashable, Sendable {
            case depthExceeded
            case unexpectedType
            case endOfArray
        }

        fileprivate let value: Value

        /// A required member sits deeper than `maxDepth`: the type is recursive without an optional exit.
        public static let depthExceeded = Code(value: .depthExceeded)
        /// A ``SchemaProbeDecodable`` conformance returned a value of another type.
        public static let unexpectedType = Code(value: .unexpectedType)
        /// The type read more than the one element the probe's arrays have (as `[K: V]` with keys other than
        /// `String` or `Int` does).
        public static let endOfArray = Code(value: .endOfArray)

        public var description: String {
            switch self.value {
            case .depthExceeded: "depthExceeded"
            case .unexpectedType: "unexpectedType"
            case .endOfArray: "endOfArray"
            }
        }
    }

    public var code: Code
    /// The path where it happened.
    public var path: String
    public var message: String

    public init(code: Code, path: String, message: String) {
        self.code = code
        self.path = path
        self.message = message
    }

    public var description: String { "\(self.code) at \(self.path.isEmpty ? "<root>" : self.path): \(self.message)" }
}

/// A type that cannot be decoded from placeholder data the usual way and says how the probe should make one.
public protocol SchemaProbeDecodable {
    /// A value of the type, decoded from `decoder` (a probe) so that the fields it reads are recorded.
    static func schemaProbeValue(from decoder: any Decoder) throws -> Self
}

extension Extensible: SchemaProbeDecodable {
    /// Probes the modelled fields; `Extensible.init(from:)` would read a `JSONValue` first.
    public static func schemaProbeValue(from decoder: any Decoder) throws -> Self {
        Self(try Fields(from: decoder))
    }
}

extension JSONValue: SchemaProbeDecodable {
    /// Any JSON at all: a leaf without a type.
    public static func schemaProbeValue(from decoder: any Decoder) throws -> Self {
        .null
    }
}

extension meta.v1.Condition.Status: SchemaProbeDecodable {
    /// Reads a string (recording the leaf) and answers `True`: `"x"` is not a valid status.
    public static func schemaProbeValue(from decoder: any Decoder) throws -> Self {
        _ = try decoder.singleValueContainer().decode(String.self)
        return .true
    }
}

// MARK: - Recorder

/// The probe's shared state: one per `probe(_:)` call, used on one thread.
private final class ProbeRecorder {
    let maxDepth: Int
    var paths: Set<String> = []
    var scalarTypes: [String: String] = [:]
    var requiredPaths: Set<String> = []

    init(maxDepth: Int) {
        self.maxDepth = maxDepth
    }

    func record(_ path: String) {
        if !path.isEmpty {
            self.paths.insert(path)
        }
    }

    func recordScalar(_ path: String, _ type: String) {
        self.record(path)
        self.scalarTypes[path] = type
    }
}

/// The OpenAPI type of a scalar Swift type.
private func openAPIType(_ type: Any.Type) -> String {
    switch type {
    case is String.Type: "string"
    case is Bool.Type: "boolean"
    case is Double.Type, is Float.Type: "number"
    case is Int8.Type, is Int16.Type, is Int32.Type, is UInt8.Type, is UInt16.Type: "integer/int32"
    default: "integer/int64"
    }
}

// MARK: - Decoder

private struct ProbeDecoder: Decoder {
    let recorder: ProbeRecorder
    /// This node's path in the probe's notation.
    let path: String
    /// Segments in `path`, counting `[]` and `{}`.
    let depth: Int
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    /// Past the depth limit: optional members are absent, arrays and maps are empty.
    var isTooDeep: Bool { self.depth >= self.recorder.maxDepth }
    /// Far past it: even required members are refused.
    var isFarTooDeep: Bool { self.depth >= 2 * self.recorder.maxDepth }

    func child(path: String, key: any CodingKey) -> ProbeDecoder {
        self.recorder.record(path)
        return ProbeDecoder(
            recorder: self.recorder,
            path: path,
            depth: self.depth + 1,
            codingPath: self.codingPath + [key]
        )
    }

    /// A `T` decoded from this decoder, through ``SchemaProbeDecodable`` and enum cases when they apply.
    func make<T: Decodable>(_ type: T.Type) throws -> T {
        if let custom = T.self as? any SchemaProbeDecodable.Type {
            return try self.cast(try custom.schemaProbeValue(from: self), to: type)
        }
        if let enumeration = T.self as? any (CaseIterable & RawRepresentable).Type,
            let value = try firstCase(of: enumeration, decoder: self)
        {
            return try self.cast(value, to: type)
        }
        return try T(from: self)
    }

    func cast<T>(_ value: Any, to type: T.Type) throws -> T {
        guard let typed = value as? T else {
            throw SchemaProbeError(
                code: .unexpectedType,
                path: self.path,
                message: "expected a \(T.self), got a \(Swift.type(of: value))"
            )
        }
        return typed
    }

    func tooDeep() -> SchemaProbeError {
        SchemaProbeError(
            code: .depthExceeded,
            path: self.path,
            message: "still reading required members \(self.depth) segments deep; is the type recursive?"
        )
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(ProbeKeyedContainer<Key>(decoder: self))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        ProbeUnkeyedContainer(decoder: self)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        ProbeSingleValueContainer(decoder: self)
    }
}

/// The first case of an enum, after decoding its raw value so that the leaf's type is recorded.
private func firstCase<E: CaseIterable & RawRepresentable>(of type: E.Type, decoder: ProbeDecoder) throws -> E? {
    if let rawType = E.RawValue.self as? any Decodable.Type {
        _ = try rawType.init(from: decoder)
    }
    return E.allCases.first
}

// MARK: - Containers

/// What a keyed container was asked: a dictionary's container is asked for `allKeys` (by `Dictionary.init(from:)`),
/// and an optional member is asked about with `contains` (by `decodeIfPresent`) before it is read.
private final class KeyedContainerState {
    var isMap = false
    var askedKeys: Set<String> = []
}

private struct ProbeKeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    static var mapKey: String { "key" }

    let decoder: ProbeDecoder
    let state = KeyedContainerState()

    var codingPath: [any CodingKey] { self.decoder.codingPath }

    var allKeys: [Key] {
        self.state.isMap = true
        guard !self.decoder.isTooDeep, let key = Key(stringValue: Self.mapKey) else { return [] }
        return [key]
    }

    func path(for key: Key) -> String {
        if self.state.isMap && key.stringValue == Self.mapKey {
            return self.decoder.path + "{}"
        }
        return SchemaProbe.member(key.stringValue, of: self.decoder.path)
    }

    /// The path of `key`'s value, recorded as required when nobody asked whether it was there.
    func read(_ key: Key) -> String {
        let path = self.path(for: key)
        if !self.state.isMap && !self.state.askedKeys.contains(key.stringValue) {
            self.decoder.recorder.requiredPaths.insert(path)
        }
        return path
    }

    func child(_ key: Key) -> ProbeDecoder {
        self.decoder.child(path: self.read(key), key: key)
    }

    func contains(_ key: Key) -> Bool {
        self.state.askedKeys.insert(key.stringValue)
        return !self.decoder.isTooDeep
    }

    func decodeNil(forKey key: Key) throws -> Bool { self.decoder.isTooDeep }

    func scalar<T>(_ key: Key, _ value: T) throws -> T {
        guard !self.decoder.isFarTooDeep else { throw self.decoder.tooDeep() }
        self.decoder.recorder.recordScalar(self.read(key), openAPIType(T.self))
        return value
    }

    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try self.scalar(key, true) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try self.scalar(key, "x") }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try self.scalar(key, 1) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try self.scalar(key, 1) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try self.scalar(key, 1) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try self.scalar(key, 1) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try self.scalar(key, 1) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try self.scalar(key, 1) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try self.scalar(key, 1) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try self.scalar(key, 1) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try self.scalar(key, 1) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try self.scalar(key, 1) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try self.scalar(key, 1) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try self.scalar(key, 1) }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        guard !self.decoder.isFarTooDeep else { throw self.decoder.tooDeep() }
        return try self.child(key).make(type)
    }

    func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type,
        forKey key: Key
    ) throws -> KeyedDecodingContainer<NestedKey> {
        guard !self.decoder.isFarTooDeep else { throw self.decoder.tooDeep() }
        return try self.child(key).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        guard !self.decoder.isFarTooDeep else { throw self.decoder.tooDeep() }
        return try self.child(key).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder { self.decoder }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        guard !self.decoder.isFarTooDeep else { throw self.decoder.tooDeep() }
        return self.child(key)
    }
}

/// An array of one element (none beyond `maxDepth`).
private struct ProbeUnkeyedContainer: UnkeyedDecodingContainer {
    let decoder: ProbeDecoder
    var currentIndex = 0

    init(decoder: ProbeDecoder) {
        self.decoder = decoder
    }

    var codingPath: [any CodingKey] { self.decoder.codingPath }
    var count: Int? { self.decoder.isTooDeep ? 0 : 1 }
    var isAtEnd: Bool { self.currentIndex >= (self.count ?? 0) }

    /// The decoder of the next element.
    mutating func next() throws -> ProbeDecoder {
        guard !self.isAtEnd else {
            if self.decoder.isTooDeep { throw self.decoder.tooDeep() }
            throw SchemaProbeError(
                code: .endOfArray,
                path: self.decoder.path,
                message: "read past the end of a one-element array"
            )
        }
        let element = self.decoder.child(path: self.decoder.path + "[]", key: AnyCodingKey(intValue: self.currentIndex))
        self.currentIndex += 1
        return element
    }

    mutating func scalar<T>(_ value: T) throws -> T {
        let element = try self.next()
        element.recorder.recordScalar(element.path, openAPIType(T.self))
        return value
    }

    mutating func decodeNil() throws -> Bool { false }

    mutating func decode(_ type: Bool.Type) throws -> Bool { try self.scalar(true) }
    mutating func decode(_ type: String.Type) throws -> String { try self.scalar("x") }
    mutating func decode(_ type: Double.Type) throws -> Double { try self.scalar(1) }
    mutating func decode(_ type: Float.Type) throws -> Float { try self.scalar(1) }
    mutating func decode(_ type: Int.Type) throws -> Int { try self.scalar(1) }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try self.scalar(1) }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try self.scalar(1) }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try self.scalar(1) }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try self.scalar(1) }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try self.scalar(1) }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try self.scalar(1) }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try self.scalar(1) }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try self.scalar(1) }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try self.scalar(1) }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try self.next().make(type)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type
    ) throws -> KeyedDecodingContainer<NestedKey> {
        try self.next().container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try self.next().unkeyedContainer()
    }

    mutating func superDecoder() throws -> any Decoder {
        try self.next()
    }
}

/// A single value at the decoder's own path. `decodeNil` is false, so `Optional` elements are probed too.
private struct ProbeSingleValueContainer: SingleValueDecodingContainer {
    let decoder: ProbeDecoder

    var codingPath: [any CodingKey] { self.decoder.codingPath }

    func scalar<T>(_ value: T) -> T {
        self.decoder.recorder.recordScalar(self.decoder.path, openAPIType(T.self))
        return value
    }

    func decodeNil() -> Bool { false }

    func decode(_ type: Bool.Type) throws -> Bool { self.scalar(true) }
    func decode(_ type: String.Type) throws -> String { self.scalar("x") }
    func decode(_ type: Double.Type) throws -> Double { self.scalar(1) }
    func decode(_ type: Float.Type) throws -> Float { self.scalar(1) }
    func decode(_ type: Int.Type) throws -> Int { self.scalar(1) }
    func decode(_ type: Int8.Type) throws -> Int8 { self.scalar(1) }
    func decode(_ type: Int16.Type) throws -> Int16 { self.scalar(1) }
    func decode(_ type: Int32.Type) throws -> Int32 { self.scalar(1) }
    func decode(_ type: Int64.Type) throws -> Int64 { self.scalar(1) }
    func decode(_ type: UInt.Type) throws -> UInt { self.scalar(1) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { self.scalar(1) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { self.scalar(1) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { self.scalar(1) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { self.scalar(1) }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try self.decoder.make(type)
    }
}
