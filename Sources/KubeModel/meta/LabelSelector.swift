extension meta.v1 {
    /// `metav1.LabelSelector`: matchLabels AND every matchExpression.
    public struct LabelSelector: Codable, Hashable, Sendable {
        public var matchLabels: [String: String]?
        public var matchExpressions: [LabelSelectorRequirement]?

        public init(matchLabels: [String: String]? = nil, matchExpressions: [LabelSelectorRequirement]? = nil) {
            self.matchLabels = matchLabels
            self.matchExpressions = matchExpressions
        }

        /// Whether `labels` satisfy the selector. An empty selector matches everything; an operator
        /// this model does not know matches nothing (fail closed).
        public func matches(_ labels: [String: String]) -> Bool {
            for (key, value) in self.matchLabels ?? [:] where labels[key] != value {
                return false
            }
            for requirement in self.matchExpressions ?? [] where !requirement.matches(labels) {
                return false
            }
            return true
        }
    }

    public struct LabelSelectorRequirement: Codable, Hashable, Sendable {
        public var key: String
        /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
        public var `operator`: String
        public var values: [String]?

        public init(key: String, operator: String, values: [String]? = nil) {
            self.key = key
            self.operator = `operator`
            self.values = values
        }

        public func matches(_ labels: [String: String]) -> Bool {
            let value = labels[self.key]
            switch self.operator {
            case "In": return value.map { (self.values ?? []).contains($0) } ?? false
            case "NotIn": return value.map { !(self.values ?? []).contains($0) } ?? true
            case "Exists": return value != nil
            case "DoesNotExist": return value == nil
            default: return false
            }
        }
    }
}

/// Matches a plain label map selector (`Service.spec.selector`): every pair must be present. An empty or
/// absent selector selects nothing, as Kubernetes does for Services.
public func selectorMatches(_ selector: [String: String]?, _ labels: [String: String]) -> Bool {
    guard let selector, !selector.isEmpty else { return false }
    return selector.allSatisfy { labels[$0.key] == $0.value }
}
