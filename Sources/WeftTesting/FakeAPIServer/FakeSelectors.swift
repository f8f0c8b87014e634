import KubeModel

/// A `labelSelector` query: requirements joined by commas, all of which must hold.
///
/// Grammar as in `k8s.io/apimachinery/pkg/labels`: `key`, `!key`, `key=value`, `key==value`, `key!=value`,
/// `key in (a,b)`, `key notin (a,b)`, `key>1`, `key<1`.
struct FakeLabelSelector: Sendable, Hashable {
    enum Operator: Sendable, Hashable {
        case exists, doesNotExist, equals, notEquals, `in`, notIn, greaterThan, lessThan
    }

    struct Requirement: Sendable, Hashable {
        var key: String
        var op: Operator
        var values: [String]

        func matches(_ labels: [String: String]) -> Bool {
            let value = labels[self.key]
            switch self.op {
            case .exists: return value != nil
            case .doesNotExist: return value == nil
            case .equals, .in: return value.map { self.values.contains($0) } ?? false
            case .notEquals, .notIn: return value.map { !self.values.contains($0) } ?? true
            case .greaterThan, .lessThan:
                guard let value, let number = Int64(value), let bound = self.values.first.flatMap({ Int64($0) })
                else { return false }
                return self.op == .greaterThan ? number > bound : number < bound
            }
        }
    }

    var requirements: [Requirement] = []

    static let everything = FakeLabelSelector()

    func matches(_ labels: [String: String]) -> Bool {
        self.requirements.allSatisfy { $0.matches(labels) }
    }

    init() {}

    init(parsing text: String) throws(FakeAPIError) {
        for clause in Self.splitClauses(text) {
            let trimmed = clause.trimmingSpaces
            if trimmed.isEmpty { continue }
            self.requirements.append(try Self.requirement(trimmed))
        }
    }

    /// Splits on commas outside parentheses.
    private static func splitClauses(_ text: String) -> [String] {
        var clauses: [String] = []
        var current = ""
        var depth = 0
        for character in text {
            switch character {
            case "(": depth += 1
            case ")": depth -= 1
            case "," where depth == 0:
                clauses.append(current)
                current = ""
                continue
            default: break
            }
            current.append(character)
        }
        clauses.append(current)
        return clauses
    }

    private static func requirement(_ clause: String) throws(FakeAPIError) -> Requirement {
        let fail = FakeAPIError.badRequest("unable to parse requirement: found '\(clause)', expected: a requirement")
        if clause.hasPrefix("!") {
            let key = String(clause.dropFirst()).trimmingSpaces
            guard Self.isValidKey(key) else { throw fail }
            return Requirement(key: key, op: .doesNotExist, values: [])
        }
        for (token, op) in [
            ("!=", Operator.notEquals), ("==", .equals), ("=", .equals), (">", .greaterThan),
            ("<", .lessThan),
        ] {
            if let range = clause.range(of: token) {
                let key = String(clause[..<range.lowerBound]).trimmingSpaces
                let value = String(clause[range.upperBound...]).trimmingSpaces
                guard Self.isValidKey(key), Self.isValidValue(value) else { throw fail }
                if op == .greaterThan || op == .lessThan, Int64(value) == nil { throw fail }
                return Requirement(key: key, op: op, values: [value])
            }
        }
        let words = clause.split(separator: " ", maxSplits: 1).map(String.init)
        if words.count == 2 {
            let rest = words[1].trimmingSpaces
            for (keyword, op) in [("notin", Operator.notIn), ("in", .in)] where rest.hasPrefix(keyword) {
                let list = String(rest.dropFirst(keyword.count)).trimmingSpaces
                guard Self.isValidKey(words[0]), list.hasPrefix("("), list.hasSuffix(")") else { throw fail }
                let values = list.dropFirst().dropLast().split(separator: ",", omittingEmptySubsequences: false)
                    .map { String($0).trimmingSpaces }
                guard values.allSatisfy(Self.isValidValue), !(values.count == 1 && values[0].isEmpty && op == .in)
                else { throw fail }
                return Requirement(key: words[0], op: op, values: values)
            }
            throw fail
        }
        guard Self.isValidKey(clause) else { throw fail }
        return Requirement(key: clause, op: .exists, values: [])
    }

    /// `[prefix/]name`: a name of alphanumerics, `-`, `_` and `.`, starting and ending alphanumeric.
    private static func isValidKey(_ key: String) -> Bool {
        let parts = key.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let name = parts.last, !name.isEmpty, name.count <= 63 else { return false }
        if parts.count == 2, parts[0].isEmpty { return false }
        return self.isValidValue(String(name))
            && parts.dropLast().allSatisfy { prefix in
                prefix.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." }
            }
    }

    /// Label values: empty, or alphanumerics with `-`, `_`, `.` inside, at most 63 characters.
    private static func isValidValue(_ value: String) -> Bool {
        guard !value.isEmpty else { return true }
        guard value.count <= 63, let first = value.first, let last = value.last,
            first.isLetter || first.isNumber, last.isLetter || last.isNumber
        else { return false }
        return value.allSatisfy { ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "-" || $0 == "_" || $0 == "." }
    }
}

/// A `fieldSelector` query over `metadata.name` and `metadata.namespace`: `f=v`, `f==v`, `f!=v`, comma = and.
struct FakeFieldSelector: Sendable, Hashable {
    struct Requirement: Sendable, Hashable {
        var field: String
        var value: String
        var negated: Bool
    }

    var requirements: [Requirement] = []

    static let everything = FakeFieldSelector()

    init() {}

    init(parsing text: String, resource: FakeAPIResource) throws(FakeAPIError) {
        for clause in text.split(separator: ",") {
            let clause = String(clause).trimmingSpaces
            if clause.isEmpty { continue }
            var parsed: Requirement?
            for (token, negated) in [("!=", true), ("==", false), ("=", false)] {
                if let range = clause.range(of: token) {
                    parsed = Requirement(
                        field: String(clause[..<range.lowerBound]).trimmingSpaces,
                        value: String(clause[range.upperBound...]).trimmingSpaces, negated: negated)
                    break
                }
            }
            guard let requirement = parsed else {
                throw FakeAPIError.badRequest("invalid selector: '\(clause)'; can't understand '\(clause)'")
            }
            guard requirement.field == "metadata.name" || requirement.field == "metadata.namespace" else {
                throw FakeAPIError.badRequest(
                    resource.isCustom
                        ? "\"\(requirement.field)\" is not a known field selector: only \"metadata.name\", "
                            + "\"metadata.namespace\""
                        : "field label not supported: \(requirement.field)")
            }
            self.requirements.append(requirement)
        }
    }

    func matches(namespace: String, name: String) -> Bool {
        self.requirements.allSatisfy { requirement in
            let actual = requirement.field == "metadata.name" ? name : namespace
            return (actual == requirement.value) != requirement.negated
        }
    }
}

extension String {
    fileprivate var trimmingSpaces: String {
        var text = Substring(self)
        while text.first == " " { text = text.dropFirst() }
        while text.last == " " { text = text.dropLast() }
        return String(text)
    }
}
