public import KubeModel

extension weft.v1alpha1 {
    /// Who may call the selected workloads. DENY policies are checked first; if any ALLOW policy selects a
    /// workload, a request none of them allows is denied; with no ALLOW policy, everything not denied is allowed.
    public struct AuthorizationPolicy: WeftResource {
        public static let apiVersion = weft.v1alpha1.apiVersion
        public static let kind = "AuthorizationPolicy"
        public static let plural = "authorizationpolicies"

        public var apiVersion: String? = weft.v1alpha1.apiVersion
        public var kind: String? = "AuthorizationPolicy"
        public var metadata = meta.v1.ObjectMeta()
        public var spec = AuthorizationPolicySpec()
        public var status: WeftStatus?

        public init() {}
    }

    public struct AuthorizationPolicySpec: Codable, Hashable, Sendable {
        /// Absent: every workload in the namespace (mesh-wide in `weft-system`).
        public var selector: meta.v1.LabelSelector?
        /// `ALLOW` (default) or `DENY`.
        public var action: String?
        /// A request matches the policy when any rule matches. No rules: matches nothing.
        public var rules: [AuthorizationRule]?

        public init() {}
    }

    /// Matches when any `from` entry and any `to` entry match; an absent list matches everything.
    public struct AuthorizationRule: Codable, Hashable, Sendable {
        public var from: [AuthorizationSource]?
        public var to: [AuthorizationOperation]?

        public init(from: [AuthorizationSource]? = nil, to: [AuthorizationOperation]? = nil) {
            self.from = from
            self.to = to
        }
    }

    /// All listed fields must match (AND); values within one field are alternatives (OR).
    public struct AuthorizationSource: Codable, Hashable, Sendable {
        /// SPIFFE IDs, e.g. `spiffe://cluster.local/ns/shop/sa/frontend`; `*` for any authenticated peer;
        /// a trailing or leading `*` matches a suffix or prefix.
        public var principals: [String]?
        public var notPrincipals: [String]?
        /// Namespaces of the calling workloads (from their identity).
        public var namespaces: [String]?
        public var notNamespaces: [String]?

        public init() {}
    }

    /// All listed fields must match (AND); values within one field are alternatives (OR).
    public struct AuthorizationOperation: Codable, Hashable, Sendable {
        public var methods: [String]?
        public var notMethods: [String]?
        /// Exact paths, `/prefix/*`, or `*suffix`.
        public var paths: [String]?
        public var notPaths: [String]?
        public var ports: [Int32]?
        public var notPorts: [Int32]?

        public init() {}
    }

    public enum AuthorizationAction: String, Codable, Hashable, Sendable, CaseIterable {
        case allow = "ALLOW"
        case deny = "DENY"
    }
}
