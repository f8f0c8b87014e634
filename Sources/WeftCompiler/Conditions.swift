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
                    self.invalid.joined(separator: "; "), generation: generation))
        } else if !self.conflicts.isEmpty {
            conditions.append(
                .make(
                    ConditionType.accepted, .false, ConditionReason.conflicted,
                    self.conflicts.joined(separator: "; "), generation: generation))
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
                    self.missingBackends.joined(separator: "; "), generation: generation))
        } else if !self.missingSubsets.isEmpty {
            conditions.append(
                .make(
                    ConditionType.resolvedRefs, .false, ConditionReason.subsetNotFound,
                    self.missingSubsets.joined(separator: "; "), generation: generation))
        } else {
            conditions.append(
                .make(
                    ConditionType.resolvedRefs, .true, ConditionReason.resolvedRefs,
                    "All references resolved.", generation: generation))
        }
        return conditions
    }
}
