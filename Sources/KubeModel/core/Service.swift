extension core.v1 {
    public typealias Service = Extensible<ServiceFields>

    public struct ServiceFields: KubeResourceFields {
        public static let apiVersion = "v1"
        public static let kind = "Service"
        public static let plural = "services"

        public var apiVersion: String?
        public var kind: String?
        public var metadata = meta.v1.ObjectMeta()
        public var spec: ServiceSpec?
        public var status: JSONValue?

        public init() {}
    }

    public typealias ServiceSpec = Extensible<ServiceSpecFields>

    public struct ServiceSpecFields: Codable, Hashable, Sendable, EmptyInitializable {
        /// `ClusterIP`, `NodePort`, `LoadBalancer` or `ExternalName`.
        public var type: String?
        public var selector: [String: String]?
        public var ports: [ServicePort]?
        public var clusterIP: String?
        public var clusterIPs: [String]?
        public var externalName: String?

        public init() {}
    }

    public typealias ServicePort = Extensible<ServicePortFields>

    public struct ServicePortFields: Codable, Hashable, Sendable, EmptyInitializable {
        public var name: String?
        public var port: Int32 = 0
        public var targetPort: IntOrString?
        public var `protocol`: String?
        /// `http`, `http2`, `grpc`, `kubernetes.io/h2c`, `tcp`, ...: the mesh uses it to pick the protocol.
        public var appProtocol: String?
        public var nodePort: Int32?

        public init() {}
    }
}
