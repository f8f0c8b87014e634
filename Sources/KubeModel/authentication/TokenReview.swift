extension authentication.v1 {
    /// `authentication.k8s.io/v1` TokenReview: asks the API server who a ServiceAccount token belongs to.
    public struct TokenReview: Codable, Hashable, Sendable {
        public var apiVersion: String = "authentication.k8s.io/v1"
        public var kind: String = "TokenReview"
        public var metadata: meta.v1.ObjectMeta?
        public var spec: TokenReviewSpec
        public var status: TokenReviewStatus?

        public init(spec: TokenReviewSpec, status: TokenReviewStatus? = nil) {
            self.spec = spec
            self.status = status
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
