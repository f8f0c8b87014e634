public import KubeModel

extension weft.v1alpha1 {
    /// Routes for one or more hosts (Services): ordered HTTP routes and TCP routes.
    public struct VirtualService: WeftResource {
        public static let apiVersion = weft.v1alpha1.apiVersion
        public static let kind = "VirtualService"
        public static let plural = "virtualservices"

        public var apiVersion: String? = weft.v1alpha1.apiVersion
        public var kind: String? = "VirtualService"
        public var metadata = meta.v1.ObjectMeta()
        public var spec = VirtualServiceSpec()
        public var status: WeftStatus?

        public init() {}
    }

    public struct VirtualServiceSpec: Codable, Hashable, Sendable {
        /// Services this applies to: short names (`catalog`), `name.namespace`, or FQDNs
        /// (`catalog.shop.svc.cluster.local`).
        public var hosts: [String] = []
        /// HTTP routes, tried in order; the first that matches wins.
        public var http: [HTTPRoute]?
        /// TCP routes for non-HTTP ports.
        public var tcp: [TCPRoute]?

        public init() {}
    }

    public struct HTTPRoute: Codable, Hashable, Sendable {
        /// A name for the route, shown in metrics and logs; unique within the VirtualService.
        public var name: String?
        /// Any of these matches selects the route (OR); all conditions within one match must hold (AND).
        /// Absent: matches every request.
        public var match: [HTTPMatchRequest]?
        /// Weighted destinations; weights must sum to 100 when more than one is listed.
        public var route: [HTTPRouteDestination]?
        /// Answer with a redirect instead of forwarding. Exclusive with `route`.
        public var redirect: HTTPRedirect?
        /// Rewrite the path and/or authority before forwarding.
        public var rewrite: HTTPRewrite?
        /// Total time for the request including retries, e.g. `2s`. Absent: no timeout.
        public var timeout: String?
        public var retries: HTTPRetry?
        public var fault: HTTPFaultInjection?
        /// Also send a copy of each request here; the copy's response is ignored.
        public var mirror: Destination?
        /// Percentage of requests to mirror (0-100). Default 100 when `mirror` is set.
        public var mirrorPercentage: Double?
        public var headers: Headers?

        public init() {}
    }

    public struct HTTPMatchRequest: Codable, Hashable, Sendable {
        public var name: String?
        public var uri: StringMatch?
        public var method: StringMatch?
        public var authority: StringMatch?
        /// Header names in lowercase.
        public var headers: [String: StringMatch]?
        public var queryParams: [String: StringMatch]?
        /// The port the request was sent to; absent matches every port.
        public var port: Int32?

        public init() {}
    }

    /// Exactly one of `exact`, `prefix` or `regex` (RE2-like syntax, full match).
    public struct StringMatch: Codable, Hashable, Sendable {
        public var exact: String?
        public var prefix: String?
        public var regex: String?

        public init(exact: String? = nil, prefix: String? = nil, regex: String? = nil) {
            self.exact = exact
            self.prefix = prefix
            self.regex = regex
        }
    }

    public struct HTTPRouteDestination: Codable, Hashable, Sendable {
        public var destination: Destination
        /// 0-100. With one destination it defaults to 100.
        public var weight: Int32?
        public var headers: Headers?

        public init(destination: Destination, weight: Int32? = nil) {
            self.destination = destination
            self.weight = weight
        }
    }

    public struct Destination: Codable, Hashable, Sendable {
        /// A Service: short name, `name.namespace`, or FQDN.
        public var host: String
        /// A subset named in the host's DestinationPolicy.
        public var subset: String?
        /// The Service port; may be omitted when the Service has exactly one port.
        public var port: PortSelector?

        public init(host: String, subset: String? = nil, port: PortSelector? = nil) {
            self.host = host
            self.subset = subset
            self.port = port
        }
    }

    public struct PortSelector: Codable, Hashable, Sendable {
        public var number: Int32

        public init(number: Int32) { self.number = number }
    }

    public struct Headers: Codable, Hashable, Sendable {
        public var request: HeaderOperations?
        public var response: HeaderOperations?

        public init(request: HeaderOperations? = nil, response: HeaderOperations? = nil) {
            self.request = request
            self.response = response
        }
    }

    public struct HeaderOperations: Codable, Hashable, Sendable {
        /// Replace (or create) these headers.
        public var set: [String: String]?
        /// Append these headers.
        public var add: [String: String]?
        /// Remove these headers.
        public var remove: [String]?

        public init(set: [String: String]? = nil, add: [String: String]? = nil, remove: [String]? = nil) {
            self.set = set
            self.add = add
            self.remove = remove
        }
    }

    public struct HTTPRedirect: Codable, Hashable, Sendable {
        public var uri: String?
        public var authority: String?
        public var port: Int32?
        /// `http` or `https`.
        public var scheme: String?
        /// 301, 302, 303, 307 or 308; default 301.
        public var redirectCode: Int32?

        public init() {}
    }

    public struct HTTPRewrite: Codable, Hashable, Sendable {
        /// Replaces the matched prefix (or the whole path for exact and regex matches).
        public var uri: String?
        public var authority: String?

        public init() {}
    }

    public struct HTTPRetry: Codable, Hashable, Sendable {
        /// Retries after the first try (0 disables retries).
        public var attempts: Int32
        /// Timeout of each try, e.g. `500ms`.
        public var perTryTimeout: String?
        /// Comma-separated: `5xx`, `gateway-error`, `reset`, `connect-failure`, `retriable-4xx`,
        /// `refused-stream`, or status codes such as `503`.
        public var retryOn: String?
        /// Retry requests whose method is not idempotent (POST, PATCH). Default false.
        public var retryNonIdempotent: Bool?
        public var backoff: RetryBackoff?

        public init(attempts: Int32) { self.attempts = attempts }
    }

    /// Exponential backoff with full jitter between `baseInterval` and `maxInterval`.
    public struct RetryBackoff: Codable, Hashable, Sendable {
        public var baseInterval: String?
        public var maxInterval: String?

        public init(baseInterval: String? = nil, maxInterval: String? = nil) {
            self.baseInterval = baseInterval
            self.maxInterval = maxInterval
        }
    }

    public struct HTTPFaultInjection: Codable, Hashable, Sendable {
        public var delay: FaultDelay?
        public var abort: FaultAbort?

        public init(delay: FaultDelay? = nil, abort: FaultAbort? = nil) {
            self.delay = delay
            self.abort = abort
        }
    }

    public struct FaultDelay: Codable, Hashable, Sendable {
        /// Percentage of requests delayed (0-100); default 100.
        public var percentage: Double?
        public var fixedDelay: String

        public init(percentage: Double? = nil, fixedDelay: String) {
            self.percentage = percentage
            self.fixedDelay = fixedDelay
        }
    }

    public struct FaultAbort: Codable, Hashable, Sendable {
        /// Percentage of requests aborted (0-100); default 100.
        public var percentage: Double?
        public var httpStatus: Int32

        public init(percentage: Double? = nil, httpStatus: Int32) {
            self.percentage = percentage
            self.httpStatus = httpStatus
        }
    }

    public struct TCPRoute: Codable, Hashable, Sendable {
        public var match: [L4Match]?
        public var route: [RouteDestination]

        public init(match: [L4Match]? = nil, route: [RouteDestination]) {
            self.match = match
            self.route = route
        }
    }

    public struct L4Match: Codable, Hashable, Sendable {
        public var port: Int32?

        public init(port: Int32? = nil) { self.port = port }
    }

    public struct RouteDestination: Codable, Hashable, Sendable {
        public var destination: Destination
        public var weight: Int32?

        public init(destination: Destination, weight: Int32? = nil) {
            self.destination = destination
            self.weight = weight
        }
    }
}
