import Foundation
import KubeModel
import NIOCore

/// Reads and edits Kubernetes objects held as `JSONValue`.
enum FakeObject {
    static func metadata(_ object: JSONValue) -> JSONObject {
        object["metadata"]?.objectValue ?? [:]
    }

    /// A string member of `metadata`; nil when absent, not a string, or empty.
    static func meta(_ object: JSONValue, _ key: String) -> String? {
        guard let value = self.metadata(object)[key]?.stringValue, !value.isEmpty else { return nil }
        return value
    }

    static func labels(_ object: JSONValue) -> [String: String] {
        var labels: [String: String] = [:]
        for (key, value) in self.metadata(object)["labels"]?.objectValue ?? [:] {
            if let text = value.stringValue { labels[key] = text }
        }
        return labels
    }

    static func key(_ object: JSONValue) -> ObjectKey {
        ObjectKey(namespace: self.meta(object, "namespace") ?? "", name: self.meta(object, "name") ?? "")
    }

    static func resourceVersion(_ object: JSONValue) -> Int64 {
        self.meta(object, "resourceVersion").flatMap { Int64($0) } ?? 0
    }

    static func generation(_ object: JSONValue) -> Int64? {
        if case .int(let generation) = self.metadata(object)["generation"] { return generation }
        return nil
    }

    /// The object with a top-level member set, or removed when `value` is nil.
    static func setting(_ object: JSONValue, _ key: String, _ value: JSONValue?) -> JSONValue {
        var members = object.objectValue ?? [:]
        members[key] = value
        return .object(members)
    }

    /// The object with a member of `metadata` set, or removed when `value` is nil.
    static func settingMeta(_ object: JSONValue, _ key: String, _ value: JSONValue?) -> JSONValue {
        var metadata = self.metadata(object)
        metadata[key] = value
        return self.setting(object, "metadata", .object(metadata))
    }

    /// What `generation` tracks: everything but `metadata` and `status`.
    static func specPart(_ object: JSONValue) -> JSONObject {
        var members = object.objectValue ?? [:]
        members.removeValue(forKey: "metadata")
        members.removeValue(forKey: "status")
        return members
    }

    /// Equal apart from `metadata.resourceVersion`: a write that changes nothing else is not a write.
    static func sameContent(_ lhs: JSONValue, _ rhs: JSONValue) -> Bool {
        self.settingMeta(lhs, "resourceVersion", nil) == self.settingMeta(rhs, "resourceVersion", nil)
    }

    /// Records a write by `manager` in `metadata.managedFields`, replacing that manager's entry for the same
    /// operation and subresource.
    static func recordingManager(
        _ object: JSONValue, manager: String, operation: String, apiVersion: String, subresource: String?,
        time: String
    ) -> JSONValue {
        var entries = self.metadata(object)["managedFields"]?.arrayValue ?? []
        entries.removeAll { entry in
            entry["manager"]?.stringValue == manager && entry["operation"]?.stringValue == operation
                && entry["subresource"]?.stringValue == subresource
        }
        var entry: JSONObject = [
            "manager": .string(manager), "operation": .string(operation), "apiVersion": .string(apiVersion),
            "time": .string(time), "fieldsType": "FieldsV1",
        ]
        if let subresource { entry["subresource"] = .string(subresource) }
        entries.append(.object(entry))
        return self.settingMeta(object, "managedFields", .array(entries))
    }

    /// RFC 3339 in UTC with seconds, as Kubernetes writes timestamps.
    static func timestamp(_ date: Date) -> String {
        date.formatted(.iso8601)
    }

    /// The five random characters `generateName` gets, from the API server's alphabet (no vowels).
    static func randomSuffix() -> String {
        let alphabet = Array("bcdfghjklmnpqrstvwxz2456789")
        var generator = SystemRandomNumberGenerator()
        return String((0..<5).map { _ in alphabet[Int(generator.next(upperBound: UInt(alphabet.count)))] })
    }
}

/// JSON bytes for the wire.
enum FakeJSON {
    static func encode(_ value: JSONValue) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(value) else { return Array("null".utf8) }
        return Array(data)
    }

    static func parse(_ text: String) -> JSONValue? {
        try? JSONValue.parse(Data(text.utf8))
    }

    /// One watch event as a line: `{"object":{...},"type":"ADDED"}` and a newline.
    static func watchLine(type: String, object: JSONValue) -> ByteBuffer {
        var bytes = self.encode(.object(["type": .string(type), "object": object]))
        bytes.append(UInt8(ascii: "\n"))
        return ByteBuffer(bytes: bytes)
    }
}
