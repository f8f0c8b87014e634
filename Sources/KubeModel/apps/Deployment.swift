extension apps.v1 {
    public typealias Deployment = Extensible<DeploymentFields>

    public struct DeploymentFields: KubeResourceFields {
        public static let apiVersion = "apps/v1"
        public static let kind = "Deployment"
        public static let plural = "deployments"

        public var apiVersion: String?
        public var kind: String?
        public var metadata = meta.v1.ObjectMeta()
        public var spec: DeploymentSpec?
        public var status: DeploymentStatus?

        public init() {}
    }

    public typealias DeploymentSpec = Extensible<DeploymentSpecFields>

    public struct DeploymentSpecFields: Codable, Hashable, Sendable, EmptyInitializable {
        public var replicas: Int32?
        public var selector = meta.v1.LabelSelector()
        public var template = core.v1.PodTemplateSpec()
        public var strategy: JSONValue?

        public init() {}
    }

    public typealias DeploymentStatus = Extensible<DeploymentStatusFields>

    public struct DeploymentStatusFields: Codable, Hashable, Sendable, EmptyInitializable {
        public var observedGeneration: Int64?
        public var replicas: Int32?
        public var readyReplicas: Int32?
        public var updatedReplicas: Int32?
        public var availableReplicas: Int32?

        public init() {}
    }
}
