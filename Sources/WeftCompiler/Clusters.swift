import KubeModel
import ProxyConfig
import WeftAPI

extension WeftCompilation {
    /// Every cluster of a Service port as seen by clients in `consumer`: the whole Service, and one per subset
    /// of the DestinationPolicy that applies there.
    func clusters(
        of service: ServiceInfo, port: ServicePortInfo, policy: weft.v1alpha1.DestinationPolicy?
    )
        -> [Cluster]
    {
        let endpoints = self.endpoints(of: service, port: port)
        let topLevel = policy?.spec.trafficPolicy
        var clusters = [
            self.cluster(service, port, subset: nil, traffic: topLevel, endpoints: endpoints.map(\.endpoint))
        ]
        for subset in policy?.spec.subsets ?? [] {
            let selected = endpoints.filter { info in
                subset.labels.allSatisfy { info.labels[$0.key] == $0.value }
            }
            let traffic = Self.merge(topLevel, subset.trafficPolicy)
            clusters.append(
                self.cluster(
                    service, port, subset: subset.name, traffic: traffic,
                    endpoints: selected.map(\.endpoint)))
        }
        return clusters
    }

    private func cluster(
        _ service: ServiceInfo, _ port: ServicePortInfo, subset: String?,
        traffic: weft.v1alpha1.TrafficPolicy?, endpoints: [Endpoint]
    ) -> Cluster {
        let pool = traffic?.connectionPool
        let limits = ConnectionLimits(
            maxConnections: Self.positive(pool?.maxConnections) ?? Int(WeftDefaults.maxConnections),
            maxPendingRequests: Self.positive(pool?.maxPendingRequests) ?? Int(WeftDefaults.maxPendingRequests),
            maxRequestsPerConnection: Int(pool?.maxRequestsPerConnection ?? 0),
            connectTimeoutMs: milliseconds(pool?.connectTimeout) ?? milliseconds(WeftDefaults.connectTimeout),
            idleTimeoutMs: milliseconds(pool?.idleTimeout) ?? milliseconds(WeftDefaults.idleTimeout)
        )
        var outlier: OutlierDetection?
        if let detection = traffic?.outlierDetection {
            outlier = OutlierDetection(
                consecutive5xxErrors: Int(detection.consecutive5xxErrors ?? WeftDefaults.consecutive5xxErrors),
                consecutiveGatewayErrors: Int(detection.consecutiveGatewayErrors ?? 0),
                intervalMs: milliseconds(detection.interval) ?? milliseconds(WeftDefaults.outlierDetectionInterval),
                baseEjectionTimeMs: milliseconds(detection.baseEjectionTime)
                    ?? milliseconds(WeftDefaults.baseEjectionTime),
                maxEjectionPercent: Int(detection.maxEjectionPercent ?? WeftDefaults.maxEjectionPercent)
            )
        }
        let budget = RetryBudget(
            percent: traffic?.retryBudget?.percent ?? WeftDefaults.retryBudgetPercent,
            minRetriesPerSecond: Int(
                traffic?.retryBudget?.minRetriesPerSecond
                    ?? WeftDefaults.retryBudgetMinRetriesPerSecond)
        )
        return Cluster(
            name: Cluster.name(service: service.fqdn, port: port.port, subset: subset),
            service: service.fqdn,
            port: port.port,
            subset: subset,
            protocol: port.protocol,
            loadBalancer: Self.loadBalancer(traffic?.loadBalancer),
            limits: limits,
            outlierDetection: outlier,
            retryBudget: budget,
            endpoints: endpoints
        )
    }

    static func loadBalancer(_ settings: weft.v1alpha1.LoadBalancerSettings?) -> LoadBalancer {
        if let hash = settings?.consistentHash {
            let cookie = hash.httpCookie.map { HashCookie(name: $0.name, path: $0.path, ttlMs: milliseconds($0.ttl)) }
            return LoadBalancer(
                policy: .ringHash,
                hash: HashPolicy(
                    header: hash.httpHeaderName?.lowercased(), cookie: cookie,
                    sourceIP: hash.useSourceIp == true ? true : nil),
                ringSize: Int(hash.minimumRingSize ?? WeftDefaults.minimumRingSize)
            )
        }
        switch settings?.simple ?? WeftDefaults.loadBalancer {
        case "ROUND_ROBIN": return LoadBalancer(policy: .roundRobin)
        case "RANDOM": return LoadBalancer(policy: .random)
        default: return LoadBalancer(policy: .leastRequest)
        }
    }

    /// A subset's traffic policy overrides the top-level one field by field.
    static func merge(
        _ base: weft.v1alpha1.TrafficPolicy?, _ override: weft.v1alpha1.TrafficPolicy?
    )
        -> weft.v1alpha1.TrafficPolicy?
    {
        guard let override else { return base }
        guard var merged = base else { return override }
        if let value = override.loadBalancer { merged.loadBalancer = value }
        if let value = override.connectionPool { merged.connectionPool = value }
        if let value = override.outlierDetection { merged.outlierDetection = value }
        if let value = override.retryBudget { merged.retryBudget = value }
        return merged
    }

    private static func positive(_ value: Int32?) -> Int? {
        guard let value, value > 0 else { return nil }
        return Int(value)
    }
}

/// Milliseconds of a Go-style duration string; `nil` when absent or invalid (validation reports those).
func milliseconds(_ text: String?) -> Int? {
    guard let text, let duration = parseDuration(text) else { return nil }
    return milliseconds(duration)
}

/// Whole milliseconds of a duration.
func milliseconds(_ duration: Duration) -> Int {
    let (seconds, attoseconds) = duration.components
    return Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000)
}
