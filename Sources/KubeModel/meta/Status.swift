extension meta.v1 {
    /// `metav1.Status`: what the API server answers on an error.
    public struct Status: Codable, Hashable, Sendable, Error {
        public var apiVersion: String?
        public var kind: String?
        public var status: String?
        public var message: String?
        /// CamelCase machine-readable reason: `NotFound`, `Conflict`, `Expired`, `Gone`, `Invalid`, ...
        public var reason: String?
        public var code: Int?
        public var details: JSONValue?

        public init(
            status: String? = "Failure", message: String?, reason: String?, code: Int?, details: JSONValue? = nil
        ) {
            self.apiVersion = "v1"
            self.kind = "Status"
            self.status = status
            self.message = message
            self.reason = reason
            self.code = code
            self.details = details
        }
    }

    /// A list answer: `{"kind": "PodList", "metadata": {...}, "items": [...]}`.
    public struct List<Item: Codable & Hashable & Sendable>: Codable, Hashable, Sendable {
        public var apiVersion: String?
        public var kind: String?
        public var metadata: ListMeta
        public var items: [Item]

        public init(apiVersion: String?, kind: String?, metadata: ListMeta, items: [Item]) {
            self.apiVersion = apiVersion
            self.kind = kind
            self.metadata = metadata
            self.items = items
        }
    }

    /// One event of a watch stream.
    public struct WatchEvent<Object: Codable & Hashable & Sendable>: Codable, Hashable, Sendable {
        /// `ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK` or `ERROR`.
        public var type: String
        public var object: Object

        public init(type: String, object: Object) {
            self.type = type
            self.object = object
        }
    }
}
