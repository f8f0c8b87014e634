extension coordination.v1 {
    /// A Lease, used for leader election.
    public typealias Lease = Extensible<LeaseFields>

    public struct LeaseFields: KubeResourceFields {
        public static let apiVersion = "coordination.k8s.io/v1"
        public static let kind = "Lease"
        public static let plural = "leases"

        public var apiVersion: String?
        public var kind: String?
        public var metadata = meta.v1.ObjectMeta()
        public var spec: LeaseSpec?

        public init() {}
    }

    /// Kept `Extensible`: leader election writes the Lease back, and fields of newer Kubernetes versions
    /// (`strategy`, `preferredHolder`) must survive.
    public typealias LeaseSpec = Extensible<LeaseSpecFields>

    public struct LeaseSpecFields: Codable, Hashable, Sendable, EmptyInitializable {
        public var holderIdentity: String?
        public var leaseDurationSeconds: Int32?
        /// `MicroTime`: RFC 3339 with microseconds, e.g. `2026-11-24T21:50:53.000000Z`.
        public var acquireTime: String?
        public var renewTime: String?
        public var leaseTransitions: Int32?

        public init() {}
    }
}

extension Extensible where Fields == coordination.v1.LeaseSpecFields {
    public init(
        holderIdentity: String? = nil, leaseDurationSeconds: Int32? = nil, acquireTime: String? = nil,
        renewTime: String? = nil, leaseTransitions: Int32? = nil
    ) {
        var fields = Fields()
        fields.holderIdentity = holderIdentity
        fields.leaseDurationSeconds = leaseDurationSeconds
        fields.acquireTime = acquireTime
        fields.renewTime = renewTime
        fields.leaseTransitions = leaseTransitions
        self.init(fields)
    }
}
