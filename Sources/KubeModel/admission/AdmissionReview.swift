extension admission.v1 {
    /// `admission.k8s.io/v1` AdmissionReview: the request the API server sends a webhook and its answer.
    public struct AdmissionReview: Codable, Hashable, Sendable {
        public var apiVersion: String = "admission.k8s.io/v1"
        public var kind: String = "AdmissionReview"
        public var request: AdmissionRequest?
        public var response: AdmissionResponse?

        public init(request: AdmissionRequest? = nil, response: AdmissionResponse? = nil) {
            self.request = request
            self.response = response
        }
    }

    public struct GroupVersionKind: Codable, Hashable, Sendable {
        public var group: String
        public var version: String
        public var kind: String

        public init(group: String, version: String, kind: String) {
            self.group = group
            self.version = version
            self.kind = kind
        }
    }

    public struct GroupVersionResource: Codable, Hashable, Sendable {
        public var group: String
        public var version: String
        public var resource: String

        public init(group: String, version: String, resource: String) {
            self.group = group
            self.version = version
            self.resource = resource
        }
    }

    public struct AdmissionRequest: Codable, Hashable, Sendable {
        public var uid: String
        public var kind: GroupVersionKind
        public var resource: GroupVersionResource
        public var subResource: String?
        public var requestKind: GroupVersionKind?
        public var requestResource: GroupVersionResource?
        public var name: String?
        public var namespace: String?
        /// `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
        public var operation: String
        public var userInfo: authentication.v1.UserInfo?
        /// The object as the user sent it; kept raw so that a patch can be computed against it.
        public var object: JSONValue?
        public var oldObject: JSONValue?
        public var dryRun: Bool?
        public var options: JSONValue?

        public init(
            uid: String, kind: GroupVersionKind, resource: GroupVersionResource, operation: String,
            namespace: String? = nil, name: String? = nil, object: JSONValue? = nil
        ) {
            self.uid = uid
            self.kind = kind
            self.resource = resource
            self.operation = operation
            self.namespace = namespace
            self.name = name
            self.object = object
        }
    }

    public struct AdmissionResponse: Codable, Hashable, Sendable {
        public var uid: String
        public var allowed: Bool
        public var status: meta.v1.Status?
        /// Base64 of a JSON Patch (RFC 6902).
        public var patch: String?
        /// `JSONPatch` when `patch` is set.
        public var patchType: String?
        public var warnings: [String]?
        public var auditAnnotations: [String: String]?

        public init(
            uid: String, allowed: Bool, status: meta.v1.Status? = nil, patch: String? = nil,
            patchType: String? = nil, warnings: [String]? = nil
        ) {
            self.uid = uid
            self.allowed = allowed
            self.status = status
            self.patch = patch
            self.patchType = patchType
            self.warnings = warnings
        }
    }
}
