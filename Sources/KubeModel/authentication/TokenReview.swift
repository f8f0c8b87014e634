extension authentication.v1 {
    /// `authentication.k8s.io/v1` TokenReview: asks the API server who a ServiceAccount token belongs to.
    ///
    /// Cluster-scoped and create-only (`POST /apis/authentication.k8s.io/v1/tokenreviews`): the answer carries the
    /// `status`, and nothing is stored.
    public struct TokenReview: KubeResource {
        public static let apiVersion = "authentication.k8s.io/v1"
        public static let kind = "TokenReview"
        public static let plural = "tokenreviews"
        public static let isNamespaced = false

        public var apiVersion: String = Self.apiVersion
        public var kind: String = Self.kind
        public var metadata = meta.v1.ObjectMeta()
        public var spec: TokenReviewSpec
        public var status: TokenReviewStatus?

        public init(spec: TokenReviewSpec, status: TokenReviewStatus? = nil) {
            self.spec = spec
            self.status = status
        }

        private enum CodingKeys: String, CodingKey {
            case apiVersion, kind, metadata, spec, status
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            self.apiVersion = try container.decodeIfPresent(String.self, forKey: .apiVersion) ?? Self.apiVersion
            self.kind = try container.decodeIfPresent(String.self, forKey: .kind) ?? Self.kind
            self.metadata = try container.decodeIfPresent(meta.v1.ObjectMeta.self, forKey: .metadata) ?? .init()
            self.spec = try container.decode(TokenReviewSpec.self, forKey: .spec)
            self.status = try container.decodeIfPresent(TokenReviewStatus.self, forKey: .status)
        }
    }

    public struct TokenReviewSpec: Codable, Hashable, Sendable {
        public var token: String
        public var audiences: [String]?

        public init(token: String, audiences: [String]? = nil) {
            self.token = token
            self.audiences = audiences
        }
    }

    public struct TokenReviewStatus: Codable, Hashable, Sendable {
        public var authenticated: Bool?
        public var user: UserInfo?
        public var audiences: [String]?
        public var error: String?

        public init(authenticated: Bool? = nil, user: UserInfo? = nil, audiences: [String]? = nil, error: String? = nil)
        {
            self.authenticated = authenticated
            self.user = user
            self.audiences = audiences
            self.error = error
        }
    }

    /// `system:serviceaccount:<namespace>:<name>` for ServiceAccount tokens.
    public struct UserInfo: Codable, Hashable, Sendable {
        public var username: String?
        public var uid: String?
        public var groups: [String]?
        public var extra: [String: [String]]?

        public init(username: String? = nil, uid: String? = nil, groups: [String]? = nil) {
            self.username = username
            self.uid = uid
            self.groups = groups
        }
    }
}
