/// A JSON Patch (RFC 6902): the operations that turn one JSON document into another, as a mutating admission
/// webhook answers (`patchType: JSONPatch`).
///
/// ``diff(from:to:)`` computes one from two documents: `add` for members and elements that are new (a whole
/// object or array when its parent member was missing), `remove` for members and elements that are gone, and
/// `replace` for values that changed. A member that was `null` and is now absent is left alone (Kubernetes reads
/// both the same). Paths are JSON Pointers (RFC 6901) with `~` written `~0` and `/` written `~1`.
public struct JSONPatch: Hashable, Sendable {
    public enum Op: String, Hashable, Sendable, Codable {
        case add, remove, replace
    }

    /// One operation.
    public struct Operation: Hashable, Sendable {
        public var op: Op
        /// The JSON Pointer of the target.
        public var path: String
        /// The value for `add` and `replace`; nil for `remove`.
        public var value: JSONValue?

        public init(op: Op, path: String, value: JSONValue? = nil) {
            self.op = op
            self.path = path
            self.value = value
        }

        /// `{"op": ..., "path": ..., "value": ...}`.
        public var json: JSONValue {
            var members: JSONObject = ["op": .string(self.op.rawValue), "path": .string(self.path)]
            if let value = self.value { members["value"] = value }
            return .object(members)
        }
    }

    public var operations: [Operation]

    public init(_ operations: [Operation] = []) {
        self.operations = operations
    }

    public var isEmpty: Bool { self.operations.isEmpty }

    /// The patch as a JSON array.
    public var json: JSONValue { .array(self.operations.map(\.json)) }

    /// The operations that turn `old` into `new`.
    public static func diff(from old: JSONValue, to new: JSONValue) -> JSONPatch {
        var operations: [Operation] = []
        self.diff(old, new, at: "", into: &operations)
        return JSONPatch(operations)
    }

    /// A JSON Pointer reference token: `~` → `~0`, `/` → `~1` (in that order).
    public static func escape(_ token: String) -> String {
        guard token.contains(where: { $0 == "~" || $0 == "/" }) else { return token }
        var escaped = ""
        for character in token {
            switch character {
            case "~": escaped += "~0"
            case "/": escaped += "~1"
            default: escaped.append(character)
            }
        }
        return escaped
    }

    /// The pointer of `tokens` (each escaped).
    public static func pointer(_ tokens: [String]) -> String {
        tokens.map { "/" + self.escape($0) }.joined()
    }

    private static func diff(_ old: JSONValue, _ new: JSONValue, at path: String, into operations: inout [Operation]) {
        guard old != new else { return }
        switch (old, new) {
        case (.object(let before), .object(let after)):
            for key in before.keys.sorted() where after[key] == nil {
                if before[key] == .null { continue }
                operations.append(Operation(op: .remove, path: path + "/" + self.escape(key)))
            }
            for key in after.keys.sorted() {
                let child = path + "/" + self.escape(key)
                guard let value = after[key] else { continue }
                if let previous = before[key] {
                    self.diff(previous, value, at: child, into: &operations)
                } else {
                    operations.append(Operation(op: .add, path: child, value: value))
                }
            }
        case (.array(let before), .array(let after)):
            self.diffArrays(before, after, at: path, into: &operations)
        default:
            operations.append(Operation(op: .replace, path: path, value: new))
        }
    }

    /// Keeps the common head and tail; the elements between are diffed pairwise, then the rest added or removed.
    private static func diffArrays(
        _ before: [JSONValue], _ after: [JSONValue], at path: String, into operations: inout [Operation]
    ) {
        var prefix = 0
        while prefix < before.count, prefix < after.count, before[prefix] == after[prefix] { prefix += 1 }
        var suffix = 0
        while suffix < before.count - prefix, suffix < after.count - prefix,
            before[before.count - 1 - suffix] == after[after.count - 1 - suffix]
        {
            suffix += 1
        }
        let oldMiddle = before.count - prefix - suffix
        let newMiddle = after.count - prefix - suffix
        let paired = min(oldMiddle, newMiddle)
        for offset in 0..<paired {
            let index = prefix + offset
            self.diff(before[index], after[index], at: "\(path)/\(index)", into: &operations)
        }
        if newMiddle > paired {
            for offset in paired..<newMiddle {
                let index = prefix + offset
                operations.append(Operation(op: .add, path: "\(path)/\(index)", value: after[index]))
            }
        } else if oldMiddle > paired {
            // Highest index first, so that every index still names the element it names in `before`.
            for offset in (paired..<oldMiddle).reversed() {
                operations.append(Operation(op: .remove, path: "\(path)/\(prefix + offset)"))
            }
        }
    }
}
