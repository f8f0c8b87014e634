extension meta.v1 {
    /// `metav1.Condition`: one aspect of an object's state, as its controller sees it.
    public struct Condition: Codable, Hashable, Sendable {
        public enum Status: String, Codable, Hashable, Sendable {
            case `true` = "True"
            case `false` = "False"
            case unknown = "Unknown"
        }

        /// CamelCase, e.g. `Accepted`.
        public var type: String
        public var status: Status
        /// The `metadata.generation` this condition was computed from.
        public var observedGeneration: Int64?
        /// RFC 3339; changes only when `status` changes.
        public var lastTransitionTime: String
        /// CamelCase, e.g. `BackendNotFound`.
        public var reason: String
        /// A sentence for a person.
        public var message: String

        public init(
            type: String, status: Status, observedGeneration: Int64? = nil, lastTransitionTime: String = "",
            reason: String, message: String
        ) {
            self.type = type
            self.status = status
            self.observedGeneration = observedGeneration
            self.lastTransitionTime = lastTransitionTime
            self.reason = reason
            self.message = message
        }
    }
}

extension Array where Element == meta.v1.Condition {
    /// The condition of `type`, if present.
    public subscript(type type: String) -> meta.v1.Condition? {
        self.first { $0.type == type }
    }

    /// Merges `desired` into these conditions the Kubernetes way: `lastTransitionTime` is kept from the
    /// existing condition of the same type when the status did not change, and set to `now` otherwise.
    public func merging(_ desired: [meta.v1.Condition], now: String) -> [meta.v1.Condition] {
        desired.map { condition in
            var merged = condition
            if let existing = self[type: condition.type], existing.status == condition.status,
                !existing.lastTransitionTime.isEmpty
            {
                merged.lastTransitionTime = existing.lastTransitionTime
            } else {
                merged.lastTransitionTime = now
            }
            return merged
        }
    }
}
