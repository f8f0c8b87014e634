/// A set of endpoints the proxy balances over, with how to connect to them.
public struct Cluster: Codable, Hashable, Sendable {
    /// `outbound|<port>|<subset>|<fqdn>` (subset empty when none), as Istio names them.
    public var name: String
    /// The Service FQDN.
    public var service: String
    public var port: Int
    public var subset: String?
    public var `protocol`: AppProtocol
    public var loadBalancer: LoadBalancer
    public var limits: ConnectionLimits
    public var outlierDetection: OutlierDetection?
    public var retryBudget: RetryBudget
    /// Sorted by address then port.
    public var endpoints: [Endpoint]

    public init(
        name: String, service: String, port: Int, subset: String? = nil, protocol: AppProtocol,
        loadBalancer: LoadBalancer, limits: ConnectionLimits, outlierDetection: OutlierDetection? = nil,
        retryBudget: RetryBudget, endpoints: [Endpoint]
    ) {
        self.name = name
        self.service = service
        self.port = port
        self.subset = subset
        self.protocol = `protocol`
        self.loadBalancer = loadBalancer
        self.limits = limits
        self.outlierDetection = outlierDetection
        self.retryBudget = retryBudget
        self.endpoints = endpoints
    }

    /// The Istio-style cluster name.
    public static func name(service: String, port: Int, subset: String?) -> String {
        "outbound|\(port)|\(subset ?? "")|\(service)"
    }
}

public enum LoadBalancerPolicy: String, Codable, Hashable, Sendable {
    case roundRobin
    /// Power of two choices on outstanding requests.
    case leastRequest
    case random
    case ringHash
}

public struct LoadBalancer: Codable, Hashable, Sendable {
    public var policy: LoadBalancerPolicy
    /// For `ringHash`: what is hashed.
    public var hash: HashPolicy?
    public var ringSize: Int?

    public init(policy: LoadBalancerPolicy, hash: HashPolicy? = nil, ringSize: Int? = nil) {
        self.policy = policy
        self.hash = hash
        self.ringSize = ringSize
    }
}

/// Exactly one of the fields.
public struct HashPolicy: Codable, Hashable, Sendable {
    public var header: String?
    public var cookie: HashCookie?
    public var sourceIP: Bool?

    public init(header: String? = nil, cookie: HashCookie? = nil, sourceIP: Bool? = nil) {
        self.header = header
        self.cookie = cookie
        self.sourceIP = sourceIP
    }
}

public struct HashCookie: Codable, Hashable, Sendable {
    public var name: String
    public var path: String?
    public var ttlMs: Int?

    public init(name: String, path: String? = nil, ttlMs: Int? = nil) {
        self.name = name
        self.path = path
        self.ttlMs = ttlMs
    }
}

public struct ConnectionLimits: Codable, Hashable, Sendable {
    public var maxConnections: Int
    public var maxPendingRequests: Int
    /// 0: unlimited.
    public var maxRequestsPerConnection: Int
    public var connectTimeoutMs: Int
    public var idleTimeoutMs: Int

    public init(
        maxConnections: Int, maxPendingRequests: Int, maxRequestsPerConnection: Int, connectTimeoutMs: Int,
        idleTimeoutMs: Int
    ) {
        self.maxConnections = maxConnections
        self.maxPendingRequests = maxPendingRequests
        self.maxRequestsPerConnection = maxRequestsPerConnection
        self.connectTimeoutMs = connectTimeoutMs
        self.idleTimeoutMs = idleTimeoutMs
    }
}

public struct OutlierDetection: Codable, Hashable, Sendable {
    /// 0: disabled.
    public var consecutive5xxErrors: Int
    /// 0: disabled.
    public var consecutiveGatewayErrors: Int
    public var intervalMs: Int
    public var baseEjectionTimeMs: Int
    public var maxEjectionPercent: Int

    public init(
        consecutive5xxErrors: Int, consecutiveGatewayErrors: Int, intervalMs: Int, baseEjectionTimeMs: Int,
        maxEjectionPercent: Int
    ) {
        self.consecutive5xxErrors = consecutive5xxErrors
        self.consecutiveGatewayErrors = consecutiveGatewayErrors
        self.intervalMs = intervalMs
        self.baseEjectionTimeMs = baseEjectionTimeMs
        self.maxEjectionPercent = maxEjectionPercent
    }
}

public struct RetryBudget: Codable, Hashable, Sendable {
    /// Retries may add this percentage of the request rate...
    public var percent: Double
    /// ...plus this many per second.
    public var minRetriesPerSecond: Int

    public init(percent: Double, minRetriesPerSecond: Int) {
        self.percent = percent
        self.minRetriesPerSecond = minRetriesPerSecond
    }
}

public struct Endpoint: Codable, Hashable, Sendable {
    public var address: String
    public var port: Int
    public var zone: String?
    public var weight: Int
    /// Not ready endpoints are kept (the proxy may use them when no ready one is left) but not preferred.
    public var ready: Bool
    /// `namespace/pod`, when the endpoint is a pod.
    public var pod: String?
    /// The SPIFFE ID to expect when the endpoint is meshed: the proxy originates mTLS and verifies it.
    /// Absent: plaintext (the endpoint has no proxy, or its mTLS mode is DISABLE).
    public var identity: String?

    public init(
        address: String, port: Int, zone: String? = nil, weight: Int = 1, ready: Bool = true,
        pod: String? = nil, identity: String? = nil
    ) {
        self.address = address
        self.port = port
        self.zone = zone
        self.weight = weight
        self.ready = ready
        self.pod = pod
        self.identity = identity
    }
}
