/// One Service port as seen from a proxy: the names that reach it and its ordered routes.
public struct OutboundService: Codable, Hashable, Sendable {
    /// The FQDN, e.g. `catalog.shop.svc.cluster.local`.
    public var host: String
    /// Every other name that reaches this service: `catalog.shop`, `catalog.shop.svc`, and the cluster IPs.
    /// Sorted. The short name (`catalog`) reaches it only from its own namespace; the proxy derives it from
    /// `host` and its own namespace, so one outbound list serves every namespace.
    public var aliases: [String]
    public var port: Int
    public var `protocol`: AppProtocol
    /// HTTP routes in the order they are tried; the first match wins. Empty for TCP services.
    public var routes: [Route]
    /// For TCP (and for HTTP ports when no HTTP route is needed): weighted clusters.
    public var tcp: TCPRoute?

    public init(
        host: String, aliases: [String], port: Int, protocol: AppProtocol, routes: [Route] = [],
        tcp: TCPRoute? = nil
    ) {
        self.host = host
        self.aliases = aliases
        self.port = port
        self.protocol = `protocol`
        self.routes = routes
        self.tcp = tcp
    }
}

/// An HTTP route: matches (any of them; none means every request) and what to do.
public struct Route: Codable, Hashable, Sendable {
    /// Stable name: `<namespace>/<virtualservice>/<route name or index>`, or `default` for the implicit route.
    public var name: String
    /// Any of these selects the route; empty matches everything.
    public var matches: [RequestMatch]
    /// Exactly one of `forward` or `redirect`.
    public var forward: ForwardAction?
    public var redirect: RedirectAction?

    public init(
        name: String, matches: [RequestMatch] = [], forward: ForwardAction? = nil,
        redirect: RedirectAction? = nil
    ) {
        self.name = name
        self.matches = matches
        self.forward = forward
        self.redirect = redirect
    }
}

public enum MatchKind: String, Codable, Hashable, Sendable {
    case exact
    case prefix
    case regex
}

/// A string condition. `regex` is a full match.
public struct StringMatcher: Codable, Hashable, Sendable {
    public var kind: MatchKind
    public var value: String

    public init(_ kind: MatchKind, _ value: String) {
        self.kind = kind
        self.value = value
    }
}

/// A condition on a named header or query parameter.
public struct NamedMatcher: Codable, Hashable, Sendable {
    /// Header names are lowercase.
    public var name: String
    public var match: StringMatcher

    public init(name: String, match: StringMatcher) {
        self.name = name
        self.match = match
    }
}

/// All conditions must hold.
public struct RequestMatch: Codable, Hashable, Sendable {
    public var path: StringMatcher?
    public var method: StringMatcher?
    public var authority: StringMatcher?
    /// Sorted by name.
    public var headers: [NamedMatcher]
    /// Sorted by name.
    public var queryParams: [NamedMatcher]
    public var port: Int?

    public init(
        path: StringMatcher? = nil, method: StringMatcher? = nil, authority: StringMatcher? = nil,
        headers: [NamedMatcher] = [], queryParams: [NamedMatcher] = [], port: Int? = nil
    ) {
        self.path = path
        self.method = method
        self.authority = authority
        self.headers = headers
        self.queryParams = queryParams
        self.port = port
    }
}

public struct HeaderOperations: Codable, Hashable, Sendable {
    /// Sorted by name.
    public var set: [HeaderValue]
    /// Sorted by name.
    public var add: [HeaderValue]
    /// Sorted.
    public var remove: [String]

    public init(set: [HeaderValue] = [], add: [HeaderValue] = [], remove: [String] = []) {
        self.set = set
        self.add = add
        self.remove = remove
    }

    public var isEmpty: Bool { self.set.isEmpty && self.add.isEmpty && self.remove.isEmpty }
}

public struct HeaderValue: Codable, Hashable, Sendable {
    public var name: String
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

public struct ForwardAction: Codable, Hashable, Sendable {
    /// Weighted backends; weights are relative (they sum to 100 when they come from a VirtualService).
    public var backends: [WeightedCluster]
    /// Whole-request timeout including retries, in milliseconds. Absent: none.
    public var timeoutMs: Int?
    public var retry: RetryPolicy?
    public var fault: FaultInjection?
    public var requestHeaders: HeaderOperations?
    public var responseHeaders: HeaderOperations?
    public var rewrite: Rewrite?
    public var mirror: Mirror?

    public init(
        backends: [WeightedCluster], timeoutMs: Int? = nil, retry: RetryPolicy? = nil,
        fault: FaultInjection? = nil, requestHeaders: HeaderOperations? = nil,
        responseHeaders: HeaderOperations? = nil, rewrite: Rewrite? = nil, mirror: Mirror? = nil
    ) {
        self.backends = backends
        self.timeoutMs = timeoutMs
        self.retry = retry
        self.fault = fault
        self.requestHeaders = requestHeaders
        self.responseHeaders = responseHeaders
        self.rewrite = rewrite
        self.mirror = mirror
    }
}

public struct WeightedCluster: Codable, Hashable, Sendable {
    /// A `Cluster.name`.
    public var cluster: String
    public var weight: Int
    public var requestHeaders: HeaderOperations?
    public var responseHeaders: HeaderOperations?

    public init(
        cluster: String, weight: Int, requestHeaders: HeaderOperations? = nil,
        responseHeaders: HeaderOperations? = nil
    ) {
        self.cluster = cluster
        self.weight = weight
        self.requestHeaders = requestHeaders
        self.responseHeaders = responseHeaders
    }
}

public struct RetryPolicy: Codable, Hashable, Sendable {
    /// Retries after the first try.
    public var attempts: Int
    public var perTryTimeoutMs: Int?
    /// Normalised conditions: `5xx`, `gateway-error`, `reset`, `connect-failure`, `retriable-4xx`,
    /// `refused-stream`, gRPC status names, and status codes as strings. Sorted.
    public var retryOn: [String]
    public var retryNonIdempotent: Bool
    public var backoffBaseMs: Int
    public var backoffMaxMs: Int

    public init(
        attempts: Int, perTryTimeoutMs: Int? = nil, retryOn: [String], retryNonIdempotent: Bool = false,
        backoffBaseMs: Int = 25, backoffMaxMs: Int = 250
    ) {
        self.attempts = attempts
        self.perTryTimeoutMs = perTryTimeoutMs
        self.retryOn = retryOn
        self.retryNonIdempotent = retryNonIdempotent
        self.backoffBaseMs = backoffBaseMs
        self.backoffMaxMs = backoffMaxMs
    }
}

public struct FaultInjection: Codable, Hashable, Sendable {
    public var delay: FaultDelay?
    public var abort: FaultAbort?

    public init(delay: FaultDelay? = nil, abort: FaultAbort? = nil) {
        self.delay = delay
        self.abort = abort
    }
}

public struct FaultDelay: Codable, Hashable, Sendable {
    /// 0-100.
    public var percentage: Double
    public var delayMs: Int

    public init(percentage: Double, delayMs: Int) {
        self.percentage = percentage
        self.delayMs = delayMs
    }
}

public struct FaultAbort: Codable, Hashable, Sendable {
    /// 0-100.
    public var percentage: Double
    public var httpStatus: Int

    public init(percentage: Double, httpStatus: Int) {
        self.percentage = percentage
        self.httpStatus = httpStatus
    }
}

public struct Rewrite: Codable, Hashable, Sendable {
    /// Replaces the matched path prefix (the whole path for exact and regex matches).
    public var path: String?
    public var authority: String?

    public init(path: String? = nil, authority: String? = nil) {
        self.path = path
        self.authority = authority
    }
}

public struct Mirror: Codable, Hashable, Sendable {
    public var cluster: String
    /// 0-100.
    public var percentage: Double

    public init(cluster: String, percentage: Double) {
        self.cluster = cluster
        self.percentage = percentage
    }
}

public struct RedirectAction: Codable, Hashable, Sendable {
    public var path: String?
    public var authority: String?
    public var port: Int?
    public var scheme: String?
    public var statusCode: Int

    public init(
        path: String? = nil, authority: String? = nil, port: Int? = nil, scheme: String? = nil,
        statusCode: Int = 301
    ) {
        self.path = path
        self.authority = authority
        self.port = port
        self.scheme = scheme
        self.statusCode = statusCode
    }
}

public struct TCPRoute: Codable, Hashable, Sendable {
    public var name: String
    public var backends: [WeightedCluster]

    public init(name: String, backends: [WeightedCluster]) {
        self.name = name
        self.backends = backends
    }
}
