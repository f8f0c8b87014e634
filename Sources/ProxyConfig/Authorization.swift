/// The authorization policies that apply to one inbound port, already ordered: DENY first.
public struct AuthorizationTable: Codable, Hashable, Sendable {
    /// Sorted: every DENY policy, then every ALLOW policy; by name within each.
    public var policies: [AuthorizationPolicy]

    public init(policies: [AuthorizationPolicy] = []) {
        self.policies = policies
    }
}

public enum AuthorizationAction: String, Codable, Hashable, Sendable {
    case allow
    case deny
}

public struct AuthorizationPolicy: Codable, Hashable, Sendable {
    /// `namespace/name` of the AuthorizationPolicy resource.
    public var name: String
    public var action: AuthorizationAction
    /// The policy matches a request when any rule does. Empty: matches nothing.
    public var rules: [AuthorizationRule]

    public init(name: String, action: AuthorizationAction, rules: [AuthorizationRule]) {
        self.name = name
        self.action = action
        self.rules = rules
    }
}

/// Matches when any `from` and any `to` entry match; `nil` matches everything.
public struct AuthorizationRule: Codable, Hashable, Sendable {
    public var from: [AuthorizationSource]?
    public var to: [AuthorizationOperation]?

    public init(from: [AuthorizationSource]? = nil, to: [AuthorizationOperation]? = nil) {
        self.from = from
        self.to = to
    }
}

/// Every non-nil field must match. Principal and path patterns: exact, `*`, `prefix*` or `*suffix`.
public struct AuthorizationSource: Codable, Hashable, Sendable {
    public var principals: [String]?
    public var notPrincipals: [String]?
    public var namespaces: [String]?
    public var notNamespaces: [String]?

    public init(
        principals: [String]? = nil, notPrincipals: [String]? = nil, namespaces: [String]? = nil,
        notNamespaces: [String]? = nil
    ) {
        self.principals = principals
        self.notPrincipals = notPrincipals
        self.namespaces = namespaces
        self.notNamespaces = notNamespaces
    }
}

public struct AuthorizationOperation: Codable, Hashable, Sendable {
    public var methods: [String]?
    public var notMethods: [String]?
    public var paths: [String]?
    public var notPaths: [String]?
    public var ports: [Int]?
    public var notPorts: [Int]?

    public init(
        methods: [String]? = nil, notMethods: [String]? = nil, paths: [String]? = nil,
        notPaths: [String]? = nil, ports: [Int]? = nil, notPorts: [Int]? = nil
    ) {
        self.methods = methods
        self.notMethods = notMethods
        self.paths = paths
        self.notPaths = notPaths
        self.ports = ports
        self.notPorts = notPorts
    }
}
