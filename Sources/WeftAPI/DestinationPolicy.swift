public import KubeModel

extension weft.v1alpha1 {
    /// How traffic to one host is balanced, limited and ejected; and its subsets.
    public struct DestinationPolicy: WeftResource {
        public static let apiVersion = weft.v1alpha1.apiVersion
        public static let kind = "DestinationPolicy"
        public static let plural = "destinationpolicies"

        public var apiVersion: String? = weft.v1alpha1.apiVersion
        public var kind: String? = "DestinationPolicy"
        public var metadata = meta.v1.ObjectMeta()
        public var spec = DestinationPolicySpec()
        public var status: WeftStatus?

        public init() {}
    }

    public struct DestinationPolicySpec: Codable, Hashable, Sendable {
        /// The Service this applies to: short name, `name.namespace`, or FQDN.
        public var host: String = ""
        public var trafficPolicy: TrafficPolicy?
        public var subsets: [Subset]?

        public init() {}
    }

    public struct TrafficPolicy: Codable, Hashable, Sendable {
        public var loadBalancer: LoadBalancerSettings?
        public var connectionPool: ConnectionPoolSettings?
        public var outlierDetection: OutlierDetection?
        public var retryBudget: RetryBudget?

        public init() {}
    }

    /// Exactly one of `simple` or `consistentHash`.
    public struct LoadBalancerSettings: Codable, Hashable, Sendable {
        /// `ROUND_ROBIN`, `LEAST_REQUEST` (power of two choices) or `RANDOM`.
        public var simple: String?
        public var consistentHash: ConsistentHash?

        public init(simple: String? = nil, consistentHash: ConsistentHash? = nil) {
            self.simple = simple
            self.consistentHash = consistentHash
        }
    }

    /// Ring hash on exactly one of a header, a cookie, or the source IP.
    public struct ConsistentHash: Codable, Hashable, Sendable {
        public var httpHeaderName: String?
        public var httpCookie: HTTPCookie?
        public var useSourceIp: Bool?
        /// Default 1024.
        public var minimumRingSize: Int32?

        public init() {}
    }

    public struct HTTPCookie: Codable, Hashable, Sendable {
        public var name: String
        public var path: String?
        /// When set, the proxy creates the cookie if the request has none.
        public var ttl: String?

        public init(name: String) { self.name = name }
    }

    /// Limits beyond which the proxy answers 503 `overflow` (circuit breaking).
    public struct ConnectionPoolSettings: Codable, Hashable, Sendable {
        /// Connections to all endpoints of the host, per proxy. 0 or absent: 1024.
        public var maxConnections: Int32?
        /// Requests waiting for a connection. 0 or absent: 1024.
        public var maxPendingRequests: Int32?
        /// 0 or absent: unlimited.
        public var maxRequestsPerConnection: Int32?
        /// Default 10s.
        public var connectTimeout: String?
        /// Close upstream connections idle this long. Default 1h.
        public var idleTimeout: String?

        public init() {}
    }

    public struct OutlierDetection: Codable, Hashable, Sendable {
        /// Consecutive 5xx answers that eject an endpoint. Default 5; 0 disables.
        public var consecutive5xxErrors: Int32?
        /// Consecutive 502/503/504 or connect failures that eject an endpoint. 0 or absent disables.
        public var consecutiveGatewayErrors: Int32?
        /// How often ejections are evaluated. Default 10s.
        public var interval: String?
        /// Ejection time is this times the number of ejections. Default 30s.
        public var baseEjectionTime: String?
        /// At most this percentage of endpoints ejected at once. Default 10.
        public var maxEjectionPercent: Int32?

        public init() {}
    }

    /// Retries allowed beyond `percent` of requests plus `minRetriesPerSecond`.
    public struct RetryBudget: Codable, Hashable, Sendable {
        /// Default 20.
        public var percent: Double?
        /// Default 10.
        public var minRetriesPerSecond: Int32?

        public init(percent: Double? = nil, minRetriesPerSecond: Int32? = nil) {
            self.percent = percent
            self.minRetriesPerSecond = minRetriesPerSecond
        }
    }

    public struct Subset: Codable, Hashable, Sendable {
        public var name: String
        /// Endpoints whose pods have all these labels.
        public var labels: [String: String]
        /// Overrides the top-level traffic policy for this subset, field by field.
        public var trafficPolicy: TrafficPolicy?

        public init(name: String, labels: [String: String], trafficPolicy: TrafficPolicy? = nil) {
            self.name = name
            self.labels = labels
            self.trafficPolicy = trafficPolicy
        }
    }
}
