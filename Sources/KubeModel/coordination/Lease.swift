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

    public struct LeaseSpec: Codable, Hashable, Sendable {
        public var holderIdentity: String?
        public var leaseDurationSeconds: Int32?
        /// `MicroTime`: RFC 3339 with microseconds, e.g. `2026-11-24T21:50:53.000000Z`.
        public var acquireTime: String?
        public var renewTime: String?
        public var leaseTransitions: Int32?

        public init(holderIdentity: String? = nil, leaseDurationSeconds: Int32? = nil, acquireTime: String? = nil,
                    renewTime: String? = nil, leaseTransitions: Int32? = nil) {
            self.holderIdentity = holderIdentity
            self.leaseDurationSeconds = leaseDurationSeconds
            self.acquireTime = acquireTime
            self.renewTime = renewTime
            self.leaseTransitions = leaseTransitions
        }
    }
}
