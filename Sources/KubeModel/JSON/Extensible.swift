/// A Kubernetes object (or part of one) whose modelled fields live in `fields` and whose every other
/// member is kept, untouched, in `unknownFields`.
///
/// The mesh writes back objects that users wrote (the injector patches their pods): a field this model
/// does not know must survive a decode/encode round trip. Members of `Fields` read through dynamic member
/// lookup, so `pod.spec?.containers` reads as if the wrapper were not there.
@dynamicMemberLookup
public struct Extensible<Fields: Codable & Hashable & Sendable>: Codable, Hashable, Sendable {
    /// The modelled fields.
    public var fields: Fields
    /// Members the model does not know, kept as they came.
    public var unknownFields: JSONObject

    public init(_ fields: Fields, unknownFields: JSONObject = [:]) {
        self.fields = fields
        self.unknownFields = unknownFields
    }

    public subscript<Value>(dynamicMember keyPath: WritableKeyPath<Fields, Value>) -> Value {
        get { self.fields[keyPath: keyPath] }
        set { self.fields[keyPath: keyPath] = newValue }
    }

    public init(from decoder: any Decoder) throws {
        let node = try JSONValue(from: decoder)
        let tracker = KeyTracker()
        self.fields = try Fields(
            from: JSONValueDecoderImpl(value: node, codingPath: decoder.codingPath, tracker: tracker))
        var unknown = node.objectValue ?? [:]
        for key in tracker.keys { unknown.removeValue(forKey: key) }
        self.unknownFields = unknown
    }

    public func encode(to encoder: any Encoder) throws {
        if !self.unknownFields.isEmpty {
            var container = encoder.container(keyedBy: AnyCodingKey.self)
            for (key, value) in self.unknownFields {
                try container.encode(value, forKey: AnyCodingKey(key))
            }
        }
        try self.fields.encode(to: encoder)
    }
}

/// Fields structs have an empty initialiser so that code builds objects by assignment.
public protocol EmptyInitializable {
    init()
}

extension Extensible where Fields: EmptyInitializable {
    /// An object with every field at its default.
    public init() {
        self.init(Fields())
    }
}
