// DestinationPolicy, MeshTLSPolicy and AuthorizationPolicy validation.

/// `loadBalancer.simple` values.
let simpleLoadBalancers = ["ROUND_ROBIN", "LEAST_REQUEST", "RANDOM"]

extension FieldErrors {
    // MARK: DestinationPolicy

    mutating func checkDestinationPolicySpec(_ spec: weft.v1alpha1.DestinationPolicySpec) {
        self.checkHost(spec.host, at: "spec.host")
        if let policy = spec.trafficPolicy {
            self.checkTrafficPolicy(policy, at: "spec.trafficPolicy")
        }
        var seenSubsets: Set<String> = []
        for (index, subset) in (spec.subsets ?? []).enumerated() {
            let path = "spec.subsets[\(index)]"
            self.checkDNSLabel(subset.name, at: "\(path).name")
            if !seenSubsets.insert(subset.name).inserted {
                self.add("\(path).name", "duplicate subset name \(quoted(subset.name))")
            }
            if subset.labels.isEmpty {
                self.add("\(path).labels", "must not be empty")
            }
            self.checkLabels(subset.labels, at: "\(path).labels")
            if let policy = subset.trafficPolicy {
                self.checkTrafficPolicy(policy, at: "\(path).trafficPolicy")
            }
        }
    }

    private mutating func checkTrafficPolicy(_ policy: weft.v1alpha1.TrafficPolicy, at path: String) {
        if let loadBalancer = policy.loadBalancer {
            self.checkLoadBalancer(loadBalancer, at: "\(path).loadBalancer")
        }
        if let pool = policy.connectionPool {
            let base = "\(path).connectionPool"
            self.checkNonNegative(pool.maxConnections, at: "\(base).maxConnections")
            self.checkNonNegative(pool.maxPendingRequests, at: "\(base).maxPendingRequests")
            self.checkNonNegative(pool.maxRequestsPerConnection, at: "\(base).maxRequestsPerConnection")
            if let text = pool.connectTimeout {
                self.checkDuration(text, positive: true, at: "\(base).connectTimeout")
            }
            if let text = pool.idleTimeout {
                self.checkDuration(text, positive: false, at: "\(base).idleTimeout")
            }
        }
        if let outlier = policy.outlierDetection {
            let base = "\(path).outlierDetection"
            self.checkNonNegative(outlier.consecutive5xxErrors, at: "\(base).consecutive5xxErrors")
            self.checkNonNegative(outlier.consecutiveGatewayErrors, at: "\(base).consecutiveGatewayErrors")
            if let text = outlier.interval {
                self.checkDuration(text, positive: true, at: "\(base).interval")
            }
            if let text = outlier.baseEjectionTime {
                self.checkDuration(text, positive: true, at: "\(base).baseEjectionTime")
            }
            if let percent = outlier.maxEjectionPercent {
                self.checkRange(Int64(percent), 0, 100, at: "\(base).maxEjectionPercent")
            }
        }
        if let budget = policy.retryBudget {
            if let percent = budget.percent {
                self.checkPercentage(percent, at: "\(path).retryBudget.percent")
            }
            self.checkNonNegative(budget.minRetriesPerSecond, at: "\(path).retryBudget.minRetriesPerSecond")
        }
    }

    private mutating func checkLoadBalancer(_ loadBalancer: weft.v1alpha1.LoadBalancerSettings, at path: String) {
        if (loadBalancer.simple == nil) == (loadBalancer.consistentHash == nil) {
            self.add(path, "set exactly one of simple or consistentHash")
        }
        if let simple = loadBalancer.simple {
            self.checkOneOf(simple, simpleLoadBalancers, at: "\(path).simple")
        }
        guard let hash = loadBalancer.consistentHash else { return }
        let base = "\(path).consistentHash"
        let keys = [hash.httpHeaderName != nil, hash.httpCookie != nil, hash.useSourceIp == true]
        if keys.count(where: { $0 }) != 1 {
            self.add(base, "set exactly one of httpHeaderName, httpCookie or useSourceIp")
        }
        if let header = hash.httpHeaderName {
            self.checkHeaderName(header, at: "\(base).httpHeaderName")
        }
        if let cookie = hash.httpCookie {
            if cookie.name.isEmpty {
                self.add("\(base).httpCookie.name", "must be set")
            }
            if let cookiePath = cookie.path, !cookiePath.hasPrefix("/") {
                self.add("\(base).httpCookie.path", "must start with \"/\", got \(quoted(cookiePath))")
            }
            if let ttl = cookie.ttl {
                self.checkDuration(ttl, positive: false, at: "\(base).httpCookie.ttl")
            }
        }
        if let size = hash.minimumRingSize {
            self.checkRange(Int64(size), 1, 8_388_608, at: "\(base).minimumRingSize")
        }
    }

    // MARK: MeshTLSPolicy

    mutating func checkMeshTLSPolicySpec(_ spec: weft.v1alpha1.MeshTLSPolicySpec) {
        let modes = weft.v1alpha1.TLSMode.allCases.map(\.rawValue)
        if let selector = spec.selector {
            self.checkSelector(selector, at: "spec.selector")
        }
        if let mode = spec.mode {
            self.checkOneOf(mode, modes, at: "spec.mode")
        }
        let portLevel = spec.portLevel ?? [:]
        for key in portLevel.keys.sorted() {
            let path = "spec.portLevel.\(key)"
            // Canonical decimal only: the compiler looks ports up as `String(port)`, so `"080"` would never apply.
            let digits = key.utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
            let leadingZero = key.utf8.count > 1 && key.utf8.first == UInt8(ascii: "0")
            if digits, !leadingZero, key.utf8.count <= 5, let port = Int32(key) {
                self.checkPort(port, at: path)
            } else {
                self.add(
                    path, "must be a port number between 1 and 65535 (decimal, no leading zeros), got \(quoted(key))")
            }
            if let mode = portLevel[key] {
                self.checkOneOf(mode, modes, at: path)
            }
        }
    }

    // MARK: AuthorizationPolicy

    mutating func checkAuthorizationPolicySpec(_ spec: weft.v1alpha1.AuthorizationPolicySpec) {
        if let selector = spec.selector {
            self.checkSelector(selector, at: "spec.selector")
        }
        if let action = spec.action {
            self.checkOneOf(action, weft.v1alpha1.AuthorizationAction.allCases.map(\.rawValue), at: "spec.action")
        }
        for (index, rule) in (spec.rules ?? []).enumerated() {
            let path = "spec.rules[\(index)]"
            if let from = rule.from {
                if from.isEmpty {
                    self.add("\(path).from", "must not be empty; omit the field to match everything")
                }
                for (sourceIndex, source) in from.enumerated() {
                    self.checkSource(source, at: "\(path).from[\(sourceIndex)]")
                }
            }
            if let to = rule.to {
                if to.isEmpty {
                    self.add("\(path).to", "must not be empty; omit the field to match everything")
                }
                for (operationIndex, operation) in to.enumerated() {
                    self.checkOperation(operation, at: "\(path).to[\(operationIndex)]")
                }
            }
        }
    }

    private mutating func checkSource(_ source: weft.v1alpha1.AuthorizationSource, at path: String) {
        for (field, values) in [("principals", source.principals), ("notPrincipals", source.notPrincipals)] {
            for (index, principal) in (values ?? []).enumerated() where !isValidPrincipal(principal) {
                self.add(
                    "\(path).\(field)[\(index)]",
                    "must be \"*\" or a SPIFFE ID such as "
                        + "spiffe://cluster.local/ns/shop/sa/frontend, with at most one \"*\" at the start or end, "
                        + "got \(quoted(principal))")
            }
        }
        for (field, values) in [("namespaces", source.namespaces), ("notNamespaces", source.notNamespaces)] {
            for (index, namespace) in (values ?? []).enumerated() where namespace != "*" {
                self.checkDNSLabel(namespace, at: "\(path).\(field)[\(index)]")
            }
        }
    }

    private mutating func checkOperation(_ operation: weft.v1alpha1.AuthorizationOperation, at path: String) {
        for (field, values) in [("methods", operation.methods), ("notMethods", operation.notMethods)] {
            for (index, method) in (values ?? []).enumerated() {
                self.checkMethod(method, at: "\(path).\(field)[\(index)]")
            }
        }
        for (field, values) in [("paths", operation.paths), ("notPaths", operation.notPaths)] {
            for (index, requestPath) in (values ?? []).enumerated() where !isValidPathPattern(requestPath) {
                self.add(
                    "\(path).\(field)[\(index)]",
                    "must start with \"/\" or \"*\" and contain at most one "
                        + "\"*\", at the start or end, got \(quoted(requestPath))")
            }
        }
        for (field, values) in [("ports", operation.ports), ("notPorts", operation.notPorts)] {
            for (index, port) in (values ?? []).enumerated() {
                self.checkPort(port, at: "\(path).\(field)[\(index)]")
            }
        }
    }
}

/// `*`, a SPIFFE ID, a SPIFFE ID prefix ending in `*`, or a suffix after a leading `*`.
func isValidPrincipal(_ principal: String) -> Bool {
    if principal == "*" { return true }
    var body = Substring(principal)
    var leadingWildcard = false
    if body.hasPrefix("*") {
        body = body.dropFirst()
        leadingWildcard = true
    } else if body.hasSuffix("*") {
        body = body.dropLast()
    }
    if body.isEmpty || body.contains("*") { return false }
    return leadingWildcard || body.hasPrefix("spiffe://")
}

/// `/exact`, `/prefix/*`, `*suffix` or `*`.
func isValidPathPattern(_ path: String) -> Bool {
    guard path.hasPrefix("/") || path.hasPrefix("*") else { return false }
    let stars = path.count(where: { $0 == "*" })
    return stars == 0 || (stars == 1 && (path.hasPrefix("*") || path.hasSuffix("*")))
}
