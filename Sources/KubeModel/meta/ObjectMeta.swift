extension meta.v1 {
    /// Metadata every persisted object has (`metav1.ObjectMeta`); `managedFields` and the rest are kept unmodelled.
    public typealias ObjectMeta = Extensible<ObjectMetaFields>

    public struct ObjectMetaFields: Codable, Hashable, Sendable, EmptyInitializable {
        public var name: String?
        public var generateName: String?
        public var namespace: String?
        public var uid: String?
        public var resourceVersion: String?
        /// Bumped by the API server on every change of the spec, never on status.
        public var generation: Int64?
        public var creationTimestamp: String?
        public var deletionTimestamp: String?
        public var deletionGracePeriodSeconds: Int64?
        public var labels: [String: String]?
        public var annotations: [String: String]?
        public var ownerReferences: [OwnerReference]?
        public var finalizers: [String]?

        public init() {}
    }

    public struct OwnerReference: Codable, Hashable, Sendable {
        public var apiVersion: String
        public var kind: String
        public var name: String
        public var uid: String
        public var controller: Bool?
        public var blockOwnerDeletion: Bool?

        public init(
            apiVersion: String, kind: String, name: String, uid: String, controller: Bool? = nil,
            blockOwnerDeletion: Bool? = nil
        ) {
            self.apiVersion = apiVersion
            self.kind = kind
            self.name = name
            self.uid = uid
            self.controller = controller
            self.blockOwnerDeletion = blockOwnerDeletion
        }
    }

    /// `metav1.ListMeta`.
    public struct ListMeta: Codable, Hashable, Sendable {
        public var resourceVersion: String?
        public var `continue`: String?
        public var remainingItemCount: Int64?

        public init(resourceVersion: String? = nil, continue: String? = nil, remainingItemCount: Int64? = nil) {
            self.resourceVersion = resourceVersion
            self.continue = `continue`
            self.remainingItemCount = remainingItemCount
        }
    }
}
