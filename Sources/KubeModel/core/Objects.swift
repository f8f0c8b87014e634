extension core.v1 {
    public typealias Namespace = Extensible<NamespaceFields>

    public struct NamespaceFields: KubeResourceFields {
        public static let apiVersion = "v1"
        public static let kind = "Namespace"
        public static let plural = "namespaces"
        public static let isNamespaced = false

        public var apiVersion: String?
        public var kind: String?
        public var metadata = meta.v1.ObjectMeta()
        public var status: JSONValue?

        public init() {}
    }

    public typealias ConfigMap = Extensible<ConfigMapFields>

    public struct ConfigMapFields: KubeResourceFields {
        public static let apiVersion = "v1"
        public static let kind = "ConfigMap"
        public static let plural = "configmaps"

        public var apiVersion: String?
        public var kind: String?
        public var metadata = meta.v1.ObjectMeta()
        public var data: [String: String]?
        public var binaryData: [String: String]?
        public var immutable: Bool?

        public init() {}
    }

    public typealias Secret = Extensible<SecretFields>

    public struct SecretFields: KubeResourceFields {
        public static let apiVersion = "v1"
        public static let kind = "Secret"
        public static let plural = "secrets"

        public var apiVersion: String?
        public var kind: String?
        public var metadata = meta.v1.ObjectMeta()
        public var type: String?
        /// Base64-encoded values, as the API carries them.
        public var data: [String: String]?
        public var stringData: [String: String]?
        public var immutable: Bool?

        public init() {}
    }

    public typealias ServiceAccount = Extensible<ServiceAccountFields>

    public struct ServiceAccountFields: KubeResourceFields {
        public static let apiVersion = "v1"
        public static let kind = "ServiceAccount"
        public static let plural = "serviceaccounts"

        public var apiVersion: String?
        public var kind: String?
        public var metadata = meta.v1.ObjectMeta()

        public init() {}
    }

    /// A core/v1 Event (what `kubectl describe` shows under Events).
    public typealias Event = Extensible<EventFields>

    public struct EventFields: KubeResourceFields {
        public static let apiVersion = "v1"
        public static let kind = "Event"
        public static let plural = "events"

        public var apiVersion: String?
        public var kind: String?
        public var metadata = meta.v1.ObjectMeta()
        public var involvedObject = ObjectReference()
        public var reason: String?
        public var message: String?
        public var type: String?
        public var source: EventSource?
        public var count: Int32?
        public var firstTimestamp: String?
        public var lastTimestamp: String?
        public var eventTime: String?
        public var reportingComponent: String?
        public var reportingInstance: String?
        public var action: String?

        public init() {}
    }

    public struct ObjectReference: Codable, Hashable, Sendable {
        public var apiVersion: String?
        public var kind: String?
        public var namespace: String?
        public var name: String?
        public var uid: String?
        public var resourceVersion: String?
        public var fieldPath: String?

        public init(
            apiVersion: String? = nil, kind: String? = nil, namespace: String? = nil, name: String? = nil,
            uid: String? = nil, resourceVersion: String? = nil, fieldPath: String? = nil
        ) {
            self.apiVersion = apiVersion
            self.kind = kind
            self.namespace = namespace
            self.name = name
            self.uid = uid
            self.resourceVersion = resourceVersion
            self.fieldPath = fieldPath
        }
    }

    public struct EventSource: Codable, Hashable, Sendable {
        public var component: String?
        public var host: String?

        public init(component: String? = nil, host: String? = nil) {
            self.component = component
            self.host = host
        }
    }
}
