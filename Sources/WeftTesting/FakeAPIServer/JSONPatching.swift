import KubeModel

/// The patch formats of the API server, on `JSONValue` documents: RFC 7386 merge patch and RFC 6902 JSON patch.
enum JSONPatching {
    struct PatchError: Error, Sendable, Hashable {
        var message: String
        /// True when the patch document itself is malformed (400); false when it does not apply (422).
        var isMalformed: Bool
    }

    // MARK: - RFC 7386

    /// Applies a JSON merge patch: objects merge member by member, `null` removes a member, anything else replaces.
    static func mergePatch(_ target: JSONValue?, with patch: JSONValue) -> JSONValue {
        guard case .object(let members) = patch else { return patch }
        var result = target?.objectValue ?? [:]
        for (key, value) in members {
            if value == .null {
                result.removeValue(forKey: key)
            } else {
                result[key] = self.mergePatch(result[key], with: value)
            }
        }
        return .object(result)
    }

    // MARK: - RFC 6902

    /// Parses a JSON patch document: an array of operations.
    static func operations(_ document: JSONValue) throws(PatchError) -> [JSONObject] {
        guard case .array(let elements) = document else {
            throw PatchError(
                message: "json: cannot unmarshal \(document.kindDescription) into Go value of type jsonpatch.Patch",
                isMalformed: true)
        }
        var operations: [JSONObject] = []
        for element in elements {
            guard let operation = element.objectValue else {
                throw PatchError(
                    message:
                        "json: cannot unmarshal \(element.kindDescription) into Go value of type jsonpatch.Operation",
                    isMalformed: true)
            }
            operations.append(operation)
        }
        return operations
    }

    /// Applies RFC 6902 operations in order; the document is unchanged when one fails.
    static func jsonPatch(_ document: JSONValue, operations: [JSONObject]) throws(PatchError) -> JSONValue {
        var document = document
        for operation in operations {
            guard let op = operation["op"]?.stringValue else {
                throw PatchError(message: "Unexpected kind: <nil>", isMalformed: false)
            }
            let path = try self.pointer(operation, "path")
            switch op {
            case "add":
                document = try self.add(self.value(operation, op), at: path, in: document)
            case "remove":
                document = try self.remove(at: path, in: document).document
            case "replace":
                guard self.get(path, in: document) != nil else {
                    throw PatchError(
                        message: "replace operation does not apply: doc is missing key: \(self.render(path))",
                        isMalformed: false)
                }
                let removed = try self.remove(at: path, in: document).document
                document = try self.add(self.value(operation, op), at: path, in: removed)
            case "move":
                let from = try self.pointer(operation, "from")
                if path.count > from.count, Array(path.prefix(from.count)) == from {
                    throw PatchError(
                        message: "move operation cannot move a value into its own child", isMalformed: false)
                }
                let (removed, value) = try self.remove(at: from, in: document)
                document = try self.add(value, at: path, in: removed)
            case "copy":
                let from = try self.pointer(operation, "from")
                guard let value = self.get(from, in: document) else {
                    throw PatchError(
                        message: "copy operation does not apply: doc is missing from path: \(self.render(from))",
                        isMalformed: false)
                }
                document = try self.add(value, at: path, in: document)
            case "test":
                let expected = try self.value(operation, op)
                guard let actual = self.get(path, in: document), self.jsonEqual(actual, expected) else {
                    throw PatchError(
                        message: "testing value \(self.render(path)) failed: test failed", isMalformed: false)
                }
            default:
                throw PatchError(message: "Unexpected kind: \(op)", isMalformed: false)
            }
        }
        return document
    }

    /// RFC 6902 `test` equality: numbers compare by value, so `1` equals `1.0`.
    static func jsonEqual(_ lhs: JSONValue, _ rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.int(let left), .double(let right)), (.double(let right), .int(let left)): return Double(left) == right
        case (.array(let left), .array(let right)):
            return left.count == right.count && zip(left, right).allSatisfy { self.jsonEqual($0, $1) }
        case (.object(let left), .object(let right)):
            return left.count == right.count
                && left.allSatisfy { key, value in right[key].map { self.jsonEqual(value, $0) } ?? false }
        default: return lhs == rhs
        }
    }

    // MARK: - JSON pointers (RFC 6901)

    /// `/a/b~1c/~0d` → `["a", "b/c", "~d"]`; `""` is the whole document.
    static func parsePointer(_ text: String) throws(PatchError) -> [String] {
        if text.isEmpty { return [] }
        guard text.hasPrefix("/") else {
            throw PatchError(message: "JSON pointer must be empty or start with a \"/\": \(text)", isMalformed: false)
        }
        return text.dropFirst().split(separator: "/", omittingEmptySubsequences: false).map {
            String($0).replacing("~1", with: "/").replacing("~0", with: "~")
        }
    }

    static func get(_ path: [String], in document: JSONValue) -> JSONValue? {
        var current = document
        for token in path {
            switch current {
            case .object(let members):
                guard let next = members[token] else { return nil }
                current = next
            case .array(let elements):
                guard let index = self.index(token, count: elements.count, allowEnd: false) else { return nil }
                current = elements[index]
            default:
                return nil
            }
        }
        return current
    }

    private static func render(_ path: [String]) -> String {
        path.map { "/" + $0.replacing("~", with: "~0").replacing("/", with: "~1") }.joined()
    }

    private static func pointer(_ operation: JSONObject, _ member: String) throws(PatchError) -> [String] {
        guard let text = operation[member]?.stringValue else {
            throw PatchError(message: "operation missing \"\(member)\" string", isMalformed: false)
        }
        return try self.parsePointer(text)
    }

    private static func value(_ operation: JSONObject, _ op: String) throws(PatchError) -> JSONValue {
        guard let value = operation["value"] else {
            throw PatchError(message: "\(op) operation missing \"value\"", isMalformed: false)
        }
        return value
    }

    /// An array index token: digits without a leading zero, below `count` (or `-` / `count` itself for `add`).
    private static func index(_ token: String, count: Int, allowEnd: Bool) -> Int? {
        if token == "-" { return allowEnd ? count : nil }
        guard !token.isEmpty, token.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
            token == "0" || !token.hasPrefix("0"), let index = Int(token)
        else { return nil }
        return index < count || (allowEnd && index == count) ? index : nil
    }

    private static func add(
        _ value: JSONValue, at path: [String], in document: JSONValue
    ) throws(PatchError)
        -> JSONValue
    {
        guard let token = path.first else { return value }
        let rest = Array(path.dropFirst())
        switch document {
        case .object(var members):
            if rest.isEmpty {
                members[token] = value
            } else {
                guard let child = members[token] else {
                    throw PatchError(
                        message: "add operation does not apply: doc is missing path: \(self.render(path))",
                        isMalformed: false)
                }
                members[token] = try self.add(value, at: rest, in: child)
            }
            return .object(members)
        case .array(var elements):
            guard let index = self.index(token, count: elements.count, allowEnd: rest.isEmpty) else {
                throw PatchError(
                    message: "add operation does not apply: index \(token) is out of bounds", isMalformed: false)
            }
            if rest.isEmpty {
                elements.insert(value, at: index)
            } else {
                elements[index] = try self.add(value, at: rest, in: elements[index])
            }
            return .array(elements)
        default:
            throw PatchError(
                message: "add operation does not apply: doc is missing path: \(self.render(path))", isMalformed: false)
        }
    }

    private static func remove(
        at path: [String], in document: JSONValue
    ) throws(PatchError)
        -> (document: JSONValue, removed: JSONValue)
    {
        guard let token = path.first else {
            throw PatchError(
                message: "remove operation does not apply: cannot remove the whole document", isMalformed: false)
        }
        let rest = Array(path.dropFirst())
        let missing = PatchError(
            message: "remove operation does not apply: doc is missing path: \(self.render(path))", isMalformed: false)
        switch document {
        case .object(var members):
            guard let child = members[token] else { throw missing }
            if rest.isEmpty {
                members.removeValue(forKey: token)
                return (.object(members), child)
            }
            let (updated, removed) = try self.remove(at: rest, in: child)
            members[token] = updated
            return (.object(members), removed)
        case .array(var elements):
            guard let index = self.index(token, count: elements.count, allowEnd: false) else { throw missing }
            if rest.isEmpty {
                let removed = elements.remove(at: index)
                return (.array(elements), removed)
            }
            let (updated, removed) = try self.remove(at: rest, in: elements[index])
            elements[index] = updated
            return (.array(elements), removed)
        default:
            throw missing
        }
    }
}
