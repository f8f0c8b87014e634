import KubeModel
import ProxyConfig
import WeftAPI

extension WeftCompilation {
    /// Resolves every reference of every valid VirtualService and DestinationPolicy once, recording what is
    /// missing as `ResolvedRefs` findings and diagnostics with the field path.
    mutating func checkReferences(_ snapshot: WeftSnapshot, caches: inout ProxyCaches) {
        for vs in snapshot.virtualServices {
            let ref = ResourceRef(vs)
            guard self.policies.findings[ref]?.invalid.isEmpty ?? true else { continue }
            let errors: [(RefError, String)]
            if let (cached, found) = caches.references[vs.key], cached == vs {
                errors = found
            } else {
                errors = self.referenceErrors(vs)
                caches.references[vs.key] = (vs, errors)
            }
            for (error, field) in errors { self.record(error, ref: ref, field: field) }
            self.policies.diagnostics.append(contentsOf: Self.shadowWarnings(vs))
        }
        for dp in snapshot.destinationPolicies {
            let ref = ResourceRef(dp)
            guard self.policies.findings[ref]?.invalid.isEmpty ?? true else { continue }
            let warnings: [Diagnostic]
            if let (cached, found) = caches.subsetWarnings[dp.key], cached == dp {
                warnings = found
            } else {
                warnings = self.subsetWarnings(dp)
                caches.subsetWarnings[dp.key] = (dp, warnings)
            }
            self.policies.diagnostics.append(contentsOf: warnings)
        }
        for policy in snapshot.authorizationPolicies {
            let ref = ResourceRef(policy)
            guard self.policies.findings[ref]?.invalid.isEmpty ?? true, policy.spec.selector != nil,
                self.affectedPods(policy).isEmpty
            else { continue }
            self.policies.diagnostics.append(
                Diagnostic(
                    .warning, ref, field: "spec.selector",
                    "selects no meshed workload"))
        }
    }

    /// Warnings for HTTP routes that can never match: routes are tried in order, so every route after one that
    /// matches every request (no `match`, or a match with no condition but `uri: {prefix: /}`) is dead.
    static func shadowWarnings(_ vs: weft.v1alpha1.VirtualService) -> [Diagnostic] {
        let routes = vs.spec.http ?? []
        guard let catchAll = routes.firstIndex(where: Self.matchesEverything), catchAll < routes.count - 1 else {
            return []
        }
        let by = routes[catchAll].name.map { "spec.http[\(catchAll)] (\($0))" } ?? "spec.http[\(catchAll)]"
        return (catchAll + 1..<routes.count).map { i in
            Diagnostic(
                .warning, ResourceRef(vs), field: "spec.http[\(i)]",
                "never matched: \(by) before it matches every request")
        }
    }

    private static func matchesEverything(_ route: weft.v1alpha1.HTTPRoute) -> Bool {
        guard let matches = route.match, !matches.isEmpty else {
            return true
        }
        return matches.contains { match in
            let uriAll = match.uri == nil || match.uri == weft.v1alpha1.StringMatch(prefix: "/")
            return uriAll && match.method == nil && match.authority == nil && (match.headers ?? [:]).isEmpty
                && (match.queryParams ?? [:]).isEmpty && match.port == nil
        }
    }

    /// Every destination of a VirtualService that does not resolve, with its field path.
    private func referenceErrors(_ vs: weft.v1alpha1.VirtualService) -> [(RefError, String)] {
        let namespace = vs.metadata.namespace ?? ""
        var routed: [(ServiceInfo, ServicePortInfo)] = []
        for host in vs.spec.hosts {
            guard let key = self.index.serviceKey(host: host, from: namespace),
                let service = self.index.services[key]
            else { continue }
            routed.append(contentsOf: service.ports.map { (service, $0) })
        }
        if routed.isEmpty {
            let placeholder = ServiceInfo(
                key: ObjectKey(namespace: namespace, name: ""), fqdn: "", clusterIPs: [],
                selector: nil, ports: [])
            routed = [(placeholder, ServicePortInfo(name: nil, port: 0, targetPort: nil, protocol: .detect))]
        }
        var destinations: [(DestinationField, weft.v1alpha1.Destination)] = []
        for (i, route) in (vs.spec.http ?? []).enumerated() {
            for (j, destination) in (route.route ?? []).enumerated() {
                destinations.append((.http(i, j), destination.destination))
            }
            if let mirror = route.mirror { destinations.append((.mirror(i), mirror)) }
        }
        for (i, route) in (vs.spec.tcp ?? []).enumerated() {
            for (j, destination) in route.route.enumerated() {
                destinations.append((.tcp(i, j), destination.destination))
            }
        }
        var errors: [(RefError, String)] = []
        for (field, destination) in destinations {
            for (service, port) in routed {
                guard
                    case .failure(let error) = self.resolve(
                        destination, from: namespace, routed: service,
                        port: port, consumer: namespace)
                else { continue }
                errors.append((error, field.path))
            }
        }
        return errors
    }

    /// Warnings for subsets of a DestinationPolicy that select no endpoint.
    private func subsetWarnings(_ dp: weft.v1alpha1.DestinationPolicy) -> [Diagnostic] {
        guard let key = self.index.serviceKey(host: dp.spec.host, from: dp.metadata.namespace ?? ""),
            let service = self.index.services[key], let port = service.ports.first
        else { return [] }
        let endpoints = self.endpoints(of: service, port: port)
        var warnings: [Diagnostic] = []
        for (i, subset) in (dp.spec.subsets ?? []).enumerated()
        where !endpoints.contains(where: { info in subset.labels.allSatisfy { info.labels[$0.key] == $0.value } }) {
            warnings.append(
                Diagnostic(
                    .warning, ResourceRef(dp), field: "spec.subsets[\(i)].labels",
                    "subset \"\(subset.name)\" selects no endpoint of Service \(key)"))
        }
        return warnings
    }

    private mutating func record(_ error: RefError, ref: ResourceRef, field: String) {
        let message = "\(field): \(error.message)"
        let before = self.policies.findings[ref, default: .init()]
        switch error.kind {
        case .backendNotFound: self.policies.findings[ref, default: .init()].missingBackend(message)
        case .subsetNotFound: self.policies.findings[ref, default: .init()].missingSubset(message)
        }
        if self.policies.findings[ref] != before {
            self.policies.diagnostics.append(Diagnostic(.error, ref, field: field, error.message))
        }
    }

    /// Meshed pods an AuthorizationPolicy applies to.
    func affectedPods(_ policy: weft.v1alpha1.AuthorizationPolicy) -> [String] {
        let namespace = policy.metadata.namespace ?? ""
        let meshWide = namespace == self.index.settings.rootNamespace
        return self.index.pods.values.filter { pod in
            pod.meshed && (meshWide || pod.key.namespace == namespace)
                && (policy.spec.selector.map { $0.matches(pod.labels) } ?? true)
        }.map(\.key.description).sorted()
    }

    /// Conditions and affected proxies of every Weft resource in the snapshot.
    ///
    /// Affected proxies are `namespace/pod`, `namespace/*` (every proxy there) or `*` (every proxy).
    func statuses(_ snapshot: WeftSnapshot) -> [ResourceRef: ResourceStatus] {
        var statuses: [ResourceRef: ResourceStatus] = [:]
        func add<R: WeftResource>(_ resource: R, hasRefs: Bool, affected: () -> [String]) {
            let ref = ResourceRef(resource)
            let findings = self.policies.findings[ref] ?? ResourceFindings()
            let generation = resource.metadata.generation
            let accepted = findings.invalid.isEmpty && findings.conflicts.isEmpty
            statuses[ref] = ResourceStatus(
                generation: generation,
                conditions: findings.conditions(generation: generation, hasRefs: hasRefs),
                affectedProxies: accepted ? affected() : [])
        }
        for vs in snapshot.virtualServices {
            add(vs, hasRefs: true) { self.routingScope(vs.metadata.namespace, hosts: vs.spec.hosts) }
        }
        for dp in snapshot.destinationPolicies {
            add(dp, hasRefs: true) { self.routingScope(dp.metadata.namespace, hosts: [dp.spec.host]) }
        }
        for policy in snapshot.meshTLSPolicies {
            add(policy, hasRefs: false) { ["*"] }
        }
        for policy in snapshot.authorizationPolicies {
            add(policy, hasRefs: false) { self.affectedPods(policy) }
        }
        return statuses
    }

    /// A routing resource in a Service's own namespace shapes every proxy; one elsewhere only its namespace's.
    private func routingScope(_ namespace: String?, hosts: [String]) -> [String] {
        let namespace = namespace ?? ""
        let producer = hosts.contains { host in
            self.index.serviceKey(host: host, from: namespace)?.namespace == namespace
        }
        return producer ? ["*"] : ["\(namespace)/*"]
    }
}

/// Where a destination sits in a VirtualService; the path is only formatted when something is wrong.
enum DestinationField {
    case http(Int, Int)
    case mirror(Int)
    case tcp(Int, Int)

    var path: String {
        switch self {
        case .http(let route, let destination): "spec.http[\(route)].route[\(destination)].destination"
        case .mirror(let route): "spec.http[\(route)].mirror"
        case .tcp(let route, let destination): "spec.tcp[\(route)].route[\(destination)].destination"
        }
    }
}
