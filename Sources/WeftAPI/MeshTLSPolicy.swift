public import KubeModel

extension weft.v1alpha1 {
    /// Whether inbound traffic to workloads must be mTLS. Precedence: workload selector, then namespace,
    /// then mesh-wide (a policy in `weft-system` without selector).
    public struct MeshTLSPolicy: WeftResource {
        public static let apiVersion = weft.v1alpha1.apiVersion
        public static let kind = "MeshTLSPolicy"
        public static let plural = "meshtlspolicies"

        public var apiVersion: String? = weft.v1alpha1.apiVersion
        public var kind: String? = "MeshTLSPolicy"
        public var metadata = meta.v1.ObjectMeta()
        public var spec = MeshTLSPolicySpec()
        public var status: WeftStatus?

        public init() {}
    }

    public struct MeshTLSPolicySpec: Codable, Hashable, Sendable {
        /// Absent: the whole namespace (mesh-wide in `weft-system`).
        public var selector: meta.v1.LabelSelector?
        /// `STRICT`, `PERMISSIVE` or `DISABLE`. Absent: inherit from the namespace or mesh policy.
        public var mode: String?
        /// Per container port (the key is the port number as a string): a mode for that port.
        public var portLevel: [String: String]?

        public init() {}
    }

    public enum TLSMode: String, Codable, Hashable, Sendable, CaseIterable {
        case strict = "STRICT"
        case permissive = "PERMISSIVE"
        case disable = "DISABLE"
    }
}
