extension discovery.v1 {
    /// The label that ties an EndpointSlice to its Service.
    public static let serviceNameLabel = "kubernetes.io/service-name"

    public typealias EndpointSlice = Extensible<EndpointSliceFields>

    public struct EndpointSliceFields: KubeResourceFields {
        public static let apiVersion = "discovery.k8s.io/v1"
        public static let kind = "EndpointSlice"
        public static let plural = "endpointslices"

        public var apiVersion: String?
        public var kind: String?
        public var metadata = meta.v1.ObjectMeta()
        /// `IPv4`, `IPv6` or `FQDN`.
        public var addressType: String = "IPv4"
        public var endpoints: [Endpoint]? = []
        public var ports: [EndpointPort]?

        public init() {}
    }

    public struct Endpoint: Codable, Hashable, Sendable {
        public var addresses: [String]
        public var conditions: EndpointConditions?
        public var hostname: String?
        public var nodeName: String?
        public var zone: String?
        public var targetRef: core.v1.ObjectReference?
        public var hints: JSONValue?

        public init(
            addresses: [String], conditions: EndpointConditions? = nil, nodeName: String? = nil,
            zone: String? = nil, targetRef: core.v1.ObjectReference? = nil
        ) {
            self.addresses = addresses
            self.conditions = conditions
            self.nodeName = nodeName
            self.zone = zone
            self.targetRef = targetRef
        }
    }

    /// Per the API: a nil `ready` means ready (unknown is treated as ready by consumers).
    public struct EndpointConditions: Codable, Hashable, Sendable {
        public var ready: Bool?
        public var serving: Bool?
        public var terminating: Bool?

        public init(ready: Bool? = nil, serving: Bool? = nil, terminating: Bool? = nil) {
            self.ready = ready
            self.serving = serving
            self.terminating = terminating
        }
    }

    public struct EndpointPort: Codable, Hashable, Sendable {
        public var name: String?
        public var port: Int32?
        public var `protocol`: String?
        public var appProtocol: String?

        public init(name: String? = nil, port: Int32? = nil, protocol: String? = nil, appProtocol: String? = nil) {
            self.name = name
            self.port = port
            self.protocol = `protocol`
            self.appProtocol = appProtocol
        }
    }
}
