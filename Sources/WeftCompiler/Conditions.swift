import KubeModel

/// Condition types and reasons the compiler writes.
public enum ConditionType {
    public static let accepted = "Accepted"
    public static let resolvedRefs = "ResolvedRefs"
    public static let programmed = "Programmed"
}

public enum ConditionReason {
    public static let accepted = "Accepted"
    public static let invalid = "Invalid"
    public static let conflicted = "Conflicted"
    public static let resolvedRefs = "ResolvedRefs"
    public static let backendNotFound = "BackendNotFound"
    public static let subsetNotFound = "SubsetNotFound"
    public static let pending = "Pending"
    public static let programmed = "Programmed"
    public static let rejected = "Rejected"
}

extension meta.v1.Condition {
    static func make(
        _ type: String, _ status: Status, _ reason: String, _ message: String, generation: Int64?
    )
        -> meta.v1.Condition
    {
        meta.v1.Condition(type: type, status: status, observedGeneration: generation, reason: reason, message: message)
    }
}

/// Condition messages within the API's limit: `metav1.Condition.message` is at most 32,768 characters, and a
/// longer one makes every status write fail with 422 Invalid.
public enum ConditionMessage {
    /// The limit the CRDs and `metav1.Condition` put on `message`.
    public static let maxLength = 32_768

    /// `parts` joined with `; `; when that is longer than `limit` (counted in UTF-8 bytes, never fewer than
    /// characters), as many whole parts as fit, then `; … and N more`. A first part too long on its own is cut
    /// on a character boundary and ends with `…`.
    public static func join(_ parts: [String], limit: Int = maxLength) -> String {
        let full = parts.joined(separator: "; ")
        guard full.utf8.count > limit else { return full }
        guard parts.count > 1 else { return Self.prefix(full, utf8Count: limit - "…".utf8.count) + "…" }
        // Room for the longest suffix this can need.
        let room = limit - "; … and \(parts.count) more".utf8.count
        var message = ""
        var kept = 0
        for part in parts {
            let separator = kept == 0 ? 0 : 2
            guard message.utf8.count + separator + part.utf8.count <= room else { break }
            if kept > 0 { message += "; " }
            message += part
            kept += 1
        }
        if kept == 0, let first = parts.first {
            message = Self.prefix(first, utf8Count: room - "…".utf8.count) + "…"
            kept = 1
        }
        let rest = parts.count - kept
        return rest > 0 ? message + "; … and \(rest) more" : message
    }

    /// The longest prefix of whole characters with at most `count` UTF-8 bytes.
    static func prefix(_ text: String, utf8Count count: Int) -> String {
        var used = 0
        var end = text.startIndex
        for index in text.indices {
            let length = text[index].utf8.count
            guard used + length <= count else { break }
            used += length
            end = text.index(after: index)
        }
        return String(text[..<end])
    }
}

/// Collects the problems found for one resource while compiling, then turns them into conditions.
struct ResourceFindings: Equatable {
    var invalid: [String] = []
    var conflicts: [String] = []
    var missingBackends: [String] = []
    var missingSubsets: [String] = []
    var affectedProxies: Set<String> = []

    mutating func missingBackend(_ message: String) {
        if !self.missingBackends.contains(message) { self.missingBackends.append(message) }
    }

    mutating func missingSubset(_ message: String) {
        if !self.missingSubsets.contains(message) { self.missingSubsets.append(message) }
    }

    func conditions(generation: Int64?, hasRefs: Bool) -> [meta.v1.Condition] {
        var conditions: [meta.v1.Condition] = []
        if !self.invalid.isEmpty {
            conditions.append(
                .make(
                    ConditionType.accepted, .false, ConditionReason.invalid,
                    ConditionMessage.join(self.invalid), generation: generation))
        } else if !self.conflicts.isEmpty {
            conditions.append(
                .make(
                    ConditionType.accepted, .false, ConditionReason.conflicted,
                    ConditionMessage.join(self.conflicts), generation: generation))
        } else {
            conditions.append(
                .make(
                    ConditionType.accepted, .true, ConditionReason.accepted,
                    "The resource is valid.", generation: generation))
        }
        guard hasRefs else { return conditions }
        if !self.invalid.isEmpty {
            conditions.append(
                .make(
                    ConditionType.resolvedRefs, .unknown, ConditionReason.pending,
                    "References are not checked while the resource is invalid.", generation: generation))
        } else if !self.missingBackends.isEmpty {
            conditions.append(
                .make(
                    ConditionType.resolvedRefs, .false, ConditionReason.backendNotFound,
                    ConditionMessage.join(self.missingBackends), generation: generation))
        } else if !self.missingSubsets.isEmpty {
            conditions.append(
                .make(
                    ConditionType.resolvedRefs, .false, ConditionReason.subsetNotFound,
                    ConditionMessage.join(self.missingSubsets), generation: generation))
        } else {
            conditions.append(
                .make(
                    ConditionType.resolvedRefs, .true, ConditionReason.resolvedRefs,
                    "All references resolved.", generation: generation))
        }
        return conditions
    }
}
