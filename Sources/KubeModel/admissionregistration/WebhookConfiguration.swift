extension admissionregistration.v1 {
    /// The mutating webhooks' registration (`weft-injector`); cluster-scoped.
    public typealias MutatingWebhookConfiguration = Extensible<MutatingWebhookConfigurationFields>
    /// The validating webhooks' registration (`weft-validator`); cluster-scoped.
    public typealias ValidatingWebhookConfiguration = Extensible<ValidatingWebhookConfigurationFields>

    public struct MutatingWebhookConfigurationFields: KubeResourceFields {
        public static let apiVersion = "admissionregistration.k8s.io/v1"
        public static let kind = "MutatingWebhookConfiguration"
        public static let plural = "mutatingwebhookconfigurations"
        public static let isNamespaced = false

        public var apiVersion: String?
        public var kind: String?
        public var metadata = meta.v1.ObjectMeta()
        public var webhooks: [Webhook]?

        public init() {}
    }

    public struct ValidatingWebhookConfigurationFields: KubeResourceFields {
        public static let apiVersion = "admissionregistration.k8s.io/v1"
        public static let kind = "ValidatingWebhookConfiguration"
        public static let plural = "validatingwebhookconfigurations"
        public static let isNamespaced = false

        public var apiVersion: String?
        public var kind: String?
        public var metadata = meta.v1.ObjectMeta()
        public var webhooks: [Webhook]?

        public init() {}
    }

    /// One webhook of either configuration: only what the controller reads is modelled (its name and where
    /// the API server reaches it); rules, selectors and policies are kept as they came.
    public typealias Webhook = Extensible<WebhookFields>

    public struct WebhookFields: Codable, Hashable, Sendable, EmptyInitializable {
        public var name: String?
        public var clientConfig: WebhookClientConfig?

        public init() {}
    }

    public typealias WebhookClientConfig = Extensible<WebhookClientConfigFields>

    public struct WebhookClientConfigFields: Codable, Hashable, Sendable, EmptyInitializable {
        /// `https://host:port/path`, for a webhook outside the cluster; exclusive with `service`.
        public var url: String?
        /// The Service reference (`name`, `namespace`, `path`, `port`), kept as it came.
        public var service: JSONValue?
        /// Base64 of the PEM bundle the API server trusts for this webhook.
        public var caBundle: String?

        public init() {}
    }
}
