// Defaults: structural ones filled in by `defaulted()`, numeric ones the compiler applies from `WeftDefaults`.

/// The values Weft uses for fields a resource leaves out. `defaulted()` fills in the structural ones; the
/// compiler applies the rest when it builds proxy configuration.
public enum WeftDefaults {
    // MARK: VirtualService (applied by `defaulted()`)

    /// Weight of the only destination of a route.
    public static let singleDestinationWeight: Int32 = 100
    /// `mirrorPercentage` when `mirror` is set.
    public static let mirrorPercentage: Double = 100
    /// `fault.delay.percentage` and `fault.abort.percentage`.
    public static let faultPercentage: Double = 100
    /// `redirect.redirectCode`.
    public static let redirectCode: Int32 = 301

    // MARK: Retries (an absent `retries` means no retries)

    /// `retries.retryOn` when `retries` is set without it.
    public static let retryOn = "connect-failure,refused-stream,503"
    /// `retries.backoff.baseInterval`.
    public static let retryBackoffBaseInterval: Duration = .milliseconds(25)
    /// `retries.backoff.maxInterval`.
    public static let retryBackoffMaxInterval: Duration = .milliseconds(250)

    // MARK: DestinationPolicy (applied by the compiler)

    /// `loadBalancer.simple` when no load balancer is set.
    public static let loadBalancer = "LEAST_REQUEST"
    /// `consistentHash.minimumRingSize`.
    public static let minimumRingSize: Int32 = 1024
    /// `connectionPool.maxConnections` (also when 0).
    public static let maxConnections: Int32 = 1024
    /// `connectionPool.maxPendingRequests` (also when 0).
    public static let maxPendingRequests: Int32 = 1024
    /// `connectionPool.connectTimeout`.
    public static let connectTimeout: Duration = .seconds(10)
    /// `connectionPool.idleTimeout`.
    public static let idleTimeout: Duration = .seconds(3600)
    /// `outlierDetection.consecutive5xxErrors`.
    public static let consecutive5xxErrors: Int32 = 5
    /// `outlierDetection.interval`.
    public static let outlierDetectionInterval: Duration = .seconds(10)
    /// `outlierDetection.baseEjectionTime`.
    public static let baseEjectionTime: Duration = .seconds(30)
    /// `outlierDetection.maxEjectionPercent`.
    public static let maxEjectionPercent: Int32 = 10
    /// `retryBudget.percent`.
    public static let retryBudgetPercent: Double = 20
    /// `retryBudget.minRetriesPerSecond`.
    public static let retryBudgetMinRetriesPerSecond: Int32 = 10

    // MARK: AuthorizationPolicy (applied by `defaulted()`)

    /// `action`.
    public static let authorizationAction = weft.v1alpha1.AuthorizationAction.allow.rawValue
}

extension weft.v1alpha1.VirtualServiceSpec {
    /// The spec with structural defaults filled in: a lone destination without weight gets 100 (HTTP and
    /// TCP), `mirrorPercentage` 100 when `mirror` is set, fault percentages 100, `redirectCode` 301.
    /// Fields already set are kept, valid or not.
    public func defaulted() -> Self {
        var spec = self
        spec.http = self.http?.map { $0.defaulted() }
        spec.tcp = self.tcp?.map { route in
            var route = route
            if route.route.count == 1, route.route[0].weight == nil {
                route.route[0].weight = WeftDefaults.singleDestinationWeight
            }
            return route
        }
        return spec
    }
}

extension weft.v1alpha1.HTTPRoute {
    /// The route with structural defaults filled in; see `VirtualServiceSpec.defaulted()`.
    public func defaulted() -> Self {
        var route = self
        if var destinations = route.route, destinations.count == 1, destinations[0].weight == nil {
            destinations[0].weight = WeftDefaults.singleDestinationWeight
            route.route = destinations
        }
        if route.mirror != nil, route.mirrorPercentage == nil {
            route.mirrorPercentage = WeftDefaults.mirrorPercentage
        }
        if var fault = route.fault {
            if fault.delay != nil, fault.delay?.percentage == nil {
                fault.delay?.percentage = WeftDefaults.faultPercentage
            }
            if fault.abort != nil, fault.abort?.percentage == nil {
                fault.abort?.percentage = WeftDefaults.faultPercentage
            }
            route.fault = fault
        }
        if route.redirect != nil, route.redirect?.redirectCode == nil {
            route.redirect?.redirectCode = WeftDefaults.redirectCode
        }
        return route
    }
}

extension weft.v1alpha1.DestinationPolicySpec {
    /// The spec unchanged: a DestinationPolicy has no structural defaults; the compiler applies the
    /// numeric ones from `WeftDefaults`.
    public func defaulted() -> Self { self }
}

extension weft.v1alpha1.MeshTLSPolicySpec {
    /// The spec unchanged: an absent `mode` means "inherit", which only the compiler can resolve.
    public func defaulted() -> Self { self }
}

extension weft.v1alpha1.AuthorizationPolicySpec {
    /// The spec with `action` defaulted to `ALLOW`.
    public func defaulted() -> Self {
        var spec = self
        if spec.action == nil {
            spec.action = WeftDefaults.authorizationAction
        }
        return spec
    }
}

extension weft.v1alpha1.VirtualService {
    /// The resource with its spec defaulted; see `VirtualServiceSpec.defaulted()`.
    public func defaulted() -> Self {
        var resource = self
        resource.spec = self.spec.defaulted()
        return resource
    }
}

extension weft.v1alpha1.DestinationPolicy {
    /// The resource with its spec defaulted; see `DestinationPolicySpec.defaulted()`.
    public func defaulted() -> Self {
        var resource = self
        resource.spec = self.spec.defaulted()
        return resource
    }
}

extension weft.v1alpha1.MeshTLSPolicy {
    /// The resource with its spec defaulted; see `MeshTLSPolicySpec.defaulted()`.
    public func defaulted() -> Self {
        var resource = self
        resource.spec = self.spec.defaulted()
        return resource
    }
}

extension weft.v1alpha1.AuthorizationPolicy {
    /// The resource with its spec defaulted; see `AuthorizationPolicySpec.defaulted()`.
    public func defaulted() -> Self {
        var resource = self
        resource.spec = self.spec.defaulted()
        return resource
    }
}
