import KubeModel
import ProxyConfig
import WeftAPI

/// A route destination resolved to a Service port and a cluster name.
struct ResolvedDestination {
    var service: ServiceInfo
    var port: ServicePortInfo
    var cluster: String
}

extension WeftCompilation {
    /// One Service port as seen from proxies in `consumer`.
    func outboundService(_ service: ServiceInfo, port: ServicePortInfo, consumer: String) -> OutboundService {
        var aliases = [
            "\(service.key.name).\(service.key.namespace)", "\(service.key.name).\(service.key.namespace).svc",
        ]
        aliases.append(contentsOf: service.clusterIPs)
        let vs = self.policies.virtualService(for: service.key, consumer: consumer)
        var routes: [Route] = []
        var tcp: TCPRoute?
        if port.protocol != .tcp {
            if let vs, let http = vs.spec.http, !http.isEmpty {
                for (i, route) in http.enumerated() {
                    if let compiled = self.route(
                        route, index: i, of: vs, service: service, port: port, consumer: consumer)
                    {
                        routes.append(compiled)
                    }
                }
            } else {
                routes = [self.defaultRoute(service, port)]
            }
        }
        if port.protocol == .tcp || port.protocol == .detect {
            tcp = self.tcpRoute(vs, service: service, port: port, consumer: consumer)
        }
        return OutboundService(
            host: service.fqdn, aliases: aliases.sorted(), port: port.port,
            protocol: port.protocol, routes: routes, tcp: tcp)
    }

    private func defaultRoute(_ service: ServiceInfo, _ port: ServicePortInfo) -> Route {
        let cluster = Cluster.name(service: service.fqdn, port: port.port, subset: nil)
        return Route(
            name: "default", forward: ForwardAction(backends: [WeightedCluster(cluster: cluster, weight: 100)]))
    }

    private func route(
        _ route: weft.v1alpha1.HTTPRoute, index: Int, of vs: weft.v1alpha1.VirtualService,
        service: ServiceInfo, port: ServicePortInfo, consumer: String
    ) -> Route? {
        let namespace = vs.metadata.namespace ?? ""
        var matches: [RequestMatch] = []
        for match in route.match ?? [] where match.port == nil || Int(match.port ?? 0) == port.port {
            matches.append(Self.requestMatch(match))
        }
        if let declared = route.match, !declared.isEmpty, matches.isEmpty { return nil }
        let name = "\(namespace)/\(vs.metadata.name ?? "")/\(route.name ?? String(index))"
        if let redirect = route.redirect {
            return Route(
                name: name, matches: matches,
                redirect: RedirectAction(
                    path: redirect.uri, authority: redirect.authority, port: redirect.port.map(Int.init),
                    scheme: redirect.scheme, statusCode: Int(redirect.redirectCode ?? 301)))
        }
        let destinations = route.route ?? []
        var backends: [WeightedCluster] = []
        for destination in destinations {
            guard
                let resolved = try? self.resolve(
                    destination.destination, from: namespace, routed: service,
                    port: port, consumer: namespace
                ).get()
            else { continue }
            let weight = destinations.count == 1 ? Int(destination.weight ?? 100) : Int(destination.weight ?? 0)
            backends.append(
                WeightedCluster(
                    cluster: resolved.cluster, weight: weight,
                    requestHeaders: Self.headerOperations(destination.headers?.request),
                    responseHeaders: Self.headerOperations(destination.headers?.response)))
        }
        var retry: RetryPolicy?
        if let retries = route.retries, retries.attempts > 0 {
            let conditions = (retries.retryOn ?? WeftDefaults.retryOn).split(separator: ",")
                .map { $0.trimmingWhitespace() }.filter { !$0.isEmpty }
            retry = RetryPolicy(
                attempts: Int(retries.attempts),
                perTryTimeoutMs: milliseconds(retries.perTryTimeout),
                retryOn: Array(Set(conditions)).sorted(),
                retryNonIdempotent: retries.retryNonIdempotent ?? false,
                backoffBaseMs: milliseconds(retries.backoff?.baseInterval)
                    ?? milliseconds(WeftDefaults.retryBackoffBaseInterval),
                backoffMaxMs: milliseconds(retries.backoff?.maxInterval)
                    ?? milliseconds(WeftDefaults.retryBackoffMaxInterval))
        }
        var fault: FaultInjection?
        if let spec = route.fault {
            fault = FaultInjection(
                delay: spec.delay.flatMap { delay in
                    milliseconds(delay.fixedDelay).map { FaultDelay(percentage: delay.percentage ?? 100, delayMs: $0) }
                },
                abort: spec.abort.map { FaultAbort(percentage: $0.percentage ?? 100, httpStatus: Int($0.httpStatus)) })
        }
        var mirror: Mirror?
        if let target = route.mirror,
            let resolved = try? self.resolve(target, from: namespace, routed: service, port: port, consumer: namespace)
                .get()
        {
            mirror = Mirror(cluster: resolved.cluster, percentage: route.mirrorPercentage ?? 100)
        }
        let rewrite = route.rewrite.map { Rewrite(path: $0.uri, authority: $0.authority) }
        return Route(
            name: name, matches: matches,
            forward: ForwardAction(
                backends: backends, timeoutMs: milliseconds(route.timeout), retry: retry, fault: fault,
                requestHeaders: Self.headerOperations(route.headers?.request),
                responseHeaders: Self.headerOperations(route.headers?.response),
                rewrite: rewrite, mirror: mirror))
    }

    private func tcpRoute(
        _ vs: weft.v1alpha1.VirtualService?, service: ServiceInfo, port: ServicePortInfo,
        consumer: String
    ) -> TCPRoute {
        let namespace = vs?.metadata.namespace ?? ""
        for (i, route) in (vs?.spec.tcp ?? []).enumerated() {
            let matchesPort =
                (route.match ?? []).isEmpty
                || (route.match ?? []).contains { $0.port == nil || Int($0.port ?? 0) == port.port }
            guard matchesPort else { continue }
            var backends: [WeightedCluster] = []
            for destination in route.route {
                guard
                    let resolved = try? self.resolve(
                        destination.destination, from: namespace, routed: service,
                        port: port, consumer: namespace
                    ).get()
                else { continue }
                let weight = route.route.count == 1 ? Int(destination.weight ?? 100) : Int(destination.weight ?? 0)
                backends.append(WeightedCluster(cluster: resolved.cluster, weight: weight))
            }
            return TCPRoute(name: "\(namespace)/\(vs?.metadata.name ?? "")/tcp/\(i)", backends: backends)
        }
        let cluster = Cluster.name(service: service.fqdn, port: port.port, subset: nil)
        return TCPRoute(name: "default", backends: [WeightedCluster(cluster: cluster, weight: 100)])
    }

    /// Resolves a destination written in a resource of `namespace`, for traffic to `routed:port`.
    /// The failure is a sentence naming what is missing; its reason says which condition it sets.
    func resolve(
        _ destination: weft.v1alpha1.Destination, from namespace: String, routed: ServiceInfo,
        port routedPort: ServicePortInfo, consumer: String
    ) -> Result<ResolvedDestination, RefError> {
        guard let key = self.index.serviceKey(host: destination.host, from: namespace),
            let service = self.index.services[key]
        else {
            return .failure(RefError(.backendNotFound, "host \"\(destination.host)\" does not match a Service"))
        }
        let port: ServicePortInfo
        if let number = destination.port?.number {
            guard let found = service.ports.first(where: { $0.port == Int(number) }) else {
                return .failure(RefError(.backendNotFound, "Service \(key) has no port \(number)"))
            }
            port = found
        } else if service.ports.count == 1 {
            port = service.ports[0]
        } else if let same = service.ports.first(where: { $0.port == routedPort.port }) {
            port = same
        } else {
            return .failure(
                RefError(
                    .backendNotFound,
                    "Service \(key) has \(service.ports.count) ports: set destination.port"))
        }
        if let subset = destination.subset {
            let policy = self.policies.destinationPolicy(for: key, consumer: consumer)
            guard policy?.spec.subsets?.contains(where: { $0.name == subset }) == true else {
                let owner = policy.map { "DestinationPolicy \($0.key)" } ?? "any DestinationPolicy"
                return .failure(
                    RefError(.subsetNotFound, "subset \"\(subset)\" of \(service.fqdn) is not defined in \(owner)"))
            }
        }
        return .success(
            ResolvedDestination(
                service: service, port: port,
                cluster: Cluster.name(
                    service: service.fqdn, port: port.port,
                    subset: destination.subset)))
    }

    static func requestMatch(_ match: weft.v1alpha1.HTTPMatchRequest) -> RequestMatch {
        RequestMatch(
            path: match.uri.flatMap(Self.stringMatcher),
            method: match.method.flatMap(Self.stringMatcher),
            authority: match.authority.flatMap(Self.stringMatcher),
            headers: (match.headers ?? [:]).compactMap { name, value in
                Self.stringMatcher(value).map { NamedMatcher(name: name.lowercased(), match: $0) }
            }.sorted { $0.name < $1.name },
            queryParams: (match.queryParams ?? [:]).compactMap { name, value in
                Self.stringMatcher(value).map { NamedMatcher(name: name, match: $0) }
            }.sorted { $0.name < $1.name },
            port: match.port.map(Int.init))
    }

    static func stringMatcher(_ match: weft.v1alpha1.StringMatch) -> StringMatcher? {
        if let value = match.exact { return StringMatcher(.exact, value) }
        if let value = match.prefix { return StringMatcher(.prefix, value) }
        if let value = match.regex { return StringMatcher(.regex, value) }
        return nil
    }

    static func headerOperations(_ operations: weft.v1alpha1.HeaderOperations?) -> HeaderOperations? {
        guard let operations else { return nil }
        let result = HeaderOperations(
            set: (operations.set ?? [:]).map { HeaderValue(name: $0.key.lowercased(), value: $0.value) }
                .sorted { $0.name < $1.name },
            add: (operations.add ?? [:]).map { HeaderValue(name: $0.key.lowercased(), value: $0.value) }
                .sorted { $0.name < $1.name },
            remove: (operations.remove ?? []).map { $0.lowercased() }.sorted())
        return result.isEmpty ? nil : result
    }
}

/// A reference that does not resolve.
struct RefError: Error {
    enum Kind { case backendNotFound, subsetNotFound }
    var kind: Kind
    var message: String

    init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
}

extension Substring {
    func trimmingWhitespace() -> String {
        String(self.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
