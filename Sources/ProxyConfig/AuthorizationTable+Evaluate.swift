// Inbound authorization: decides whether a request may reach the app. Swift stdlib only.

/// What authorization looks at in an inbound request.
public struct AuthorizationRequest: Hashable, Sendable {
    /// The peer's SPIFFE ID from its mTLS certificate; `nil` for plaintext.
    public var principal: String?
    /// The HTTP method, uppercase.
    public var method: String
    /// The request target; a `?query` suffix is ignored.
    public var path: String
    /// The inbound port the request arrived on.
    public var port: Int

    /// Creates an authorization request.
    public init(principal: String?, method: String, path: String, port: Int) {
        self.principal = principal
        self.method = method
        self.path = path
        self.port = port
    }
}

/// The result of `AuthorizationTable.evaluate(_:)`.
public struct AuthorizationDecision: Hashable, Sendable {
    /// Whether the request may proceed.
    public var allowed: Bool
    /// The `namespace/name` of the policy that decided, when one did.
    public var policy: String?
    /// For logs and the 403 body: `denied by <policy>`, `allowed by <policy>`, `no ALLOW policy matched`,
    /// `no DENY policy matched` or `no policies`.
    public var reason: String

    /// Creates a decision.
    public init(allowed: Bool, policy: String?, reason: String) {
        self.allowed = allowed
        self.policy = policy
        self.reason = reason
    }
}

extension AuthorizationTable {
    /// Decides a request: any matching DENY policy denies; otherwise, when there is any ALLOW policy, the request
    /// is allowed only if one matches; otherwise it is allowed.
    ///
    /// A policy matches when any of its rules does (no rules: never). A rule matches when `from` is `nil` or any
    /// source matches, and `to` is `nil` or any operation matches. Within a source or operation every non-nil field
    /// must hold; a `not…` field holds when the value matches none of its entries. Principal, namespace and path
    /// patterns are exact, `*`, `prefix*` or `*suffix`. Without a principal (plaintext) `principals` and
    /// `namespaces` fail and `notPrincipals` and `notNamespaces` hold. The namespace is read from a principal of
    /// the form `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`. Methods are compared exactly,
    /// paths without their query string.
    public func evaluate(_ request: AuthorizationRequest) -> AuthorizationDecision {
        if self.policies.isEmpty {
            return AuthorizationDecision(allowed: true, policy: nil, reason: "no policies")
        }
        let subject = AuthorizationSubject(request)
        for policy in self.policies where policy.action == .deny && policy.matches(subject) {
            return AuthorizationDecision(allowed: false, policy: policy.name, reason: "denied by \(policy.name)")
        }
        var hasAllow = false
        for policy in self.policies where policy.action == .allow {
            hasAllow = true
            if policy.matches(subject) {
                return AuthorizationDecision(allowed: true, policy: policy.name, reason: "allowed by \(policy.name)")
            }
        }
        if hasAllow {
            return AuthorizationDecision(allowed: false, policy: nil, reason: "no ALLOW policy matched")
        }
        return AuthorizationDecision(allowed: true, policy: nil, reason: "no DENY policy matched")
    }
}

/// The request split once for matching.
struct AuthorizationSubject {
    /// `nil` when plaintext (or empty).
    var principal: Substring?
    /// From the principal; `nil` without one or when it is not a Kubernetes SPIFFE ID.
    var namespace: Substring?
    var method: Substring
    /// Without the query string.
    var path: Substring
    var port: Int

    init(_ request: AuthorizationRequest) {
        let principal = request.principal.flatMap { $0.isEmpty ? nil : $0[...] }
        self.principal = principal
        self.namespace = principal.flatMap(spiffeNamespace)
        self.method = request.method[...]
        let queryStart = request.path.utf8.firstIndex(of: UInt8(ascii: "?")) ?? request.path.endIndex
        self.path = request.path[..<queryStart]
        self.port = request.port
    }
}

/// The `<ns>` of `spiffe://<trust-domain>/ns/<ns>/...`.
func spiffeNamespace(_ principal: Substring) -> Substring? {
    let scheme = "spiffe://"
    guard principal.utf8.starts(with: scheme.utf8) else {
        return nil
    }
    let rest = principal.dropFirst(scheme.count)
    guard let slash = rest.utf8.firstIndex(of: UInt8(ascii: "/")) else {
        return nil
    }
    let path = rest[slash...]
    let marker = "/ns/"
    guard path.utf8.starts(with: marker.utf8) else {
        return nil
    }
    let afterMarker = path.dropFirst(marker.count)
    let end = afterMarker.utf8.firstIndex(of: UInt8(ascii: "/")) ?? afterMarker.endIndex
    let namespace = afterMarker[..<end]
    return namespace.isEmpty ? nil : namespace
}

/// Exact, `*` (anything), `prefix*` or `*suffix`; byte-wise.
func authorizationPatternMatches(_ pattern: String, _ value: Substring) -> Bool {
    let star = UInt8(ascii: "*")
    let bytes = pattern.utf8
    if bytes.count == 1, bytes.first == star {
        return true
    }
    if bytes.last == star {
        return value.utf8.starts(with: bytes.dropLast())
    }
    if bytes.first == star {
        let suffix = bytes.dropFirst()
        return value.utf8.count >= suffix.count && value.utf8.suffix(suffix.count).elementsEqual(suffix)
    }
    return value.utf8.elementsEqual(bytes)
}

extension AuthorizationPolicy {
    func matches(_ subject: AuthorizationSubject) -> Bool {
        self.rules.contains { $0.matches(subject) }
    }
}

extension AuthorizationRule {
    func matches(_ subject: AuthorizationSubject) -> Bool {
        if let from = self.from, !from.contains(where: { $0.matches(subject) }) {
            return false
        }
        if let to = self.to, !to.contains(where: { $0.matches(subject) }) {
            return false
        }
        return true
    }
}

/// A positive condition: a value must be present and match some pattern.
private func anyPattern(_ patterns: [String]?, _ value: Substring?) -> Bool {
    guard let patterns else {
        return true
    }
    guard let value else {
        return false
    }
    return patterns.contains { authorizationPatternMatches($0, value) }
}

/// A negative condition: holds when there is no value or it matches no pattern.
private func noPattern(_ patterns: [String]?, _ value: Substring?) -> Bool {
    guard let patterns, let value else {
        return true
    }
    return !patterns.contains { authorizationPatternMatches($0, value) }
}

extension AuthorizationSource {
    func matches(_ subject: AuthorizationSubject) -> Bool {
        anyPattern(self.principals, subject.principal)
            && noPattern(self.notPrincipals, subject.principal)
            && anyPattern(self.namespaces, subject.namespace)
            && noPattern(self.notNamespaces, subject.namespace)
    }
}

extension AuthorizationOperation {
    func matches(_ subject: AuthorizationSubject) -> Bool {
        let method = subject.method.utf8
        if let methods = self.methods, !methods.contains(where: { method.elementsEqual($0.utf8) }) {
            return false
        }
        if let notMethods = self.notMethods, notMethods.contains(where: { method.elementsEqual($0.utf8) }) {
            return false
        }
        if let ports = self.ports, !ports.contains(subject.port) {
            return false
        }
        if let notPorts = self.notPorts, notPorts.contains(subject.port) {
            return false
        }
        return anyPattern(self.paths, subject.path) && noPattern(self.notPaths, subject.path)
    }
}
