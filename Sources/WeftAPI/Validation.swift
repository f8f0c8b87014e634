import KubeModel

// Validation shared by every kind: metadata, names, numbers, durations, selectors. The per-kind checks
// live in Validation+VirtualService.swift and Validation+Policies.swift; the syntax of names in
// Validation+Names.swift.

/// Collects field errors while walking a resource. Every check appends and carries on, so that one
/// pass reports every problem.
struct FieldErrors {
    private(set) var list: [FieldError] = []

    mutating func add(_ path: String, _ message: String) {
        self.list.append(FieldError(path, message))
    }

    // MARK: Metadata

    /// `metadata.name` set and a DNS-1123 subdomain; `metadata.namespace` set and a DNS label.
    mutating func checkMetadata(_ metadata: meta.v1.ObjectMeta) {
        if let name = metadata.name, !name.isEmpty {
            if !isDNS1123Subdomain(name) {
                self.add(
                    "metadata.name",
                    "must be a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', "
                        + "starting and ending with a letter or digit, at most 253 characters), got \(quoted(name))")
            }
        } else {
            self.add("metadata.name", "must be set")
        }
        if let namespace = metadata.namespace, !namespace.isEmpty {
            self.checkDNSLabel(namespace, at: "metadata.namespace")
        } else {
            self.add("metadata.namespace", "must be set")
        }
    }

    // MARK: Names

    /// A Service host: short name, `name.namespace` or FQDN; lowercase, no wildcard, no port.
    mutating func checkHost(_ host: String, at path: String) {
        if let problem = hostProblem(host) {
            self.add(path, problem)
        }
    }

    mutating func checkDNSLabel(_ value: String, at path: String) {
        if !isDNS1123Label(value) {
            self.add(
                path,
                "must be a DNS label (lowercase letters, digits and '-', starting and ending with a "
                    + "letter or digit, at most 63 characters), got \(quoted(value))")
        }
    }

    /// An HTTP header name in lowercase.
    mutating func checkHeaderName(_ name: String, at path: String) {
        if let problem = headerNameProblem(name) {
            self.add(path, problem)
        }
    }

    /// An HTTP method: an uppercase token such as `GET`.
    mutating func checkMethod(_ method: String, at path: String) {
        if !isUppercaseToken(method) {
            self.add(path, "must be an uppercase HTTP method such as GET or POST, got \(quoted(method))")
        }
    }

    /// `value` is one of `allowed`: `must be one of A, B, got "X"`.
    mutating func checkOneOf(_ value: String, _ allowed: [String], at path: String) {
        if !allowed.contains(value) {
            self.add(path, "must be one of \(allowed.joined(separator: ", ")), got \(quoted(value))")
        }
    }

    // MARK: Numbers

    mutating func checkPort(_ port: Int32, at path: String) {
        self.checkRange(Int64(port), 1, 65_535, at: path)
    }

    mutating func checkRange(_ value: Int64, _ lower: Int64, _ upper: Int64, at path: String) {
        if value < lower || value > upper {
            self.add(path, "must be between \(lower) and \(upper), got \(value)")
        }
    }

    mutating func checkNonNegative(_ value: Int32?, at path: String) {
        if let value, value < 0 {
            self.add(path, "must not be negative, got \(value)")
        }
    }

    /// A percentage 0-100 (NaN and infinities are out of range).
    mutating func checkPercentage(_ value: Double, at path: String) {
        if !(value >= 0 && value <= 100) {
            self.add(path, "must be between 0 and 100, got \(formatNumber(value))")
        }
    }

    // MARK: Durations

    /// A Go duration; `positive` also rejects zero. Returns the duration when it is valid.
    @discardableResult
    mutating func checkDuration(_ text: String, positive: Bool, at path: String) -> Duration? {
        guard let duration = parseDuration(text) else {
            self.add(path, "invalid duration \(quoted(text)): use a number with a unit, e.g. 500ms or 2s")
            return nil
        }
        if positive && duration <= .zero {
            self.add(path, "must be greater than 0, got \(quoted(text))")
            return nil
        }
        return duration
    }

    // MARK: Selectors

    static let selectorOperators = ["In", "NotIn", "Exists", "DoesNotExist"]

    /// Label keys and values valid; operators known; values present exactly when the operator needs them.
    mutating func checkSelector(_ selector: meta.v1.LabelSelector, at path: String) {
        self.checkLabels(selector.matchLabels ?? [:], at: "\(path).matchLabels")
        for (index, requirement) in (selector.matchExpressions ?? []).enumerated() {
            let base = "\(path).matchExpressions[\(index)]"
            if let problem = labelKeyProblem(requirement.key) {
                self.add("\(base).key", problem)
            }
            let values = requirement.values ?? []
            switch requirement.operator {
            case "In", "NotIn":
                if values.isEmpty {
                    self.add("\(base).values", "must not be empty for operator \(requirement.operator)")
                }
                for (valueIndex, value) in values.enumerated() {
                    if let problem = labelValueProblem(value) {
                        self.add("\(base).values[\(valueIndex)]", problem)
                    }
                }
            case "Exists", "DoesNotExist":
                if requirement.values != nil {
                    self.add("\(base).values", "must not be set for operator \(requirement.operator)")
                }
            default:
                self.checkOneOf(requirement.operator, Self.selectorOperators, at: "\(base).operator")
            }
        }
    }

    /// A label map: keys qualified names (`app`, `example.com/tier`), values label values.
    mutating func checkLabels(_ labels: [String: String], at path: String) {
        for key in labels.keys.sorted() {
            if let problem = labelKeyProblem(key) {
                self.add("\(path).\(key)", problem)
            } else if let value = labels[key], let problem = labelValueProblem(value) {
                self.add("\(path).\(key)", problem)
            }
        }
    }
}

/// `"text"`, with quotes and backslashes escaped and control characters written as escapes (`\r`, `\n`, `\t`,
/// `\0`, `\u{1B}`), so that a message never carries a raw line break.
func quoted(_ text: String) -> String {
    var result = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": result += "\\\""
        case "\\": result += "\\\\"
        case "\n": result += "\\n"
        case "\r": result += "\\r"
        case "\t": result += "\\t"
        case "\0": result += "\\0"
        case _ where scalar.value < 0x20 || scalar.value == 0x7F:
            result += "\\u{\(String(scalar.value, radix: 16, uppercase: true))}"
        default: result.unicodeScalars.append(scalar)
        }
    }
    return result + "\""
}

/// `90` rather than `90.0`; fractions as Swift writes them.
func formatNumber(_ value: Double) -> String {
    if value.isFinite, value == value.rounded(), value.magnitude < 1e15 {
        return String(Int64(value))
    }
    return "\(value)"
}

extension weft.v1alpha1.VirtualService {
    /// Every problem with this VirtualService, each with its field path, in field order.
    public func validate() -> [FieldError] {
        var errors = FieldErrors()
        errors.checkMetadata(self.metadata)
        errors.checkVirtualServiceSpec(self.spec)
        return errors.list
    }
}

extension weft.v1alpha1.DestinationPolicy {
    /// Every problem with this DestinationPolicy, each with its field path, in field order.
    public func validate() -> [FieldError] {
        var errors = FieldErrors()
        errors.checkMetadata(self.metadata)
        errors.checkDestinationPolicySpec(self.spec)
        return errors.list
    }
}

extension weft.v1alpha1.MeshTLSPolicy {
    /// Every problem with this MeshTLSPolicy, each with its field path, in field order.
    public func validate() -> [FieldError] {
        var errors = FieldErrors()
        errors.checkMetadata(self.metadata)
        errors.checkMeshTLSPolicySpec(self.spec)
        return errors.list
    }
}

extension weft.v1alpha1.AuthorizationPolicy {
    /// Every problem with this AuthorizationPolicy, each with its field path, in field order.
    public func validate() -> [FieldError] {
        var errors = FieldErrors()
        errors.checkMetadata(self.metadata)
        errors.checkAuthorizationPolicySpec(self.spec)
        return errors.list
    }
}
