import KubeModel
import ProxyConfig
import WeftAPI

/// What decides an outbound entry: the Service port and the VirtualService that routes it for the consumer.
struct OutboundKey: Hashable, Sendable {
    var service: ObjectKey
    var port: Int
    var virtualService: ObjectKey?
}

struct ClusterKey: Hashable, Sendable {
    var service: ObjectKey
    var port: Int
    var policy: ObjectKey?
}

/// What decides a pod's inbound ports: pods of one Deployment share it.
struct InboundKey: Hashable, Sendable {
    var namespace: String
    var labels: [String: String]
    var ports: [ContainerPortInfo]
}

/// Config fragments kept between compiles by a `CompileSession` (and within one compile, shared by every proxy
/// that needs them). `CompileSession.invalidate` drops what a new snapshot makes stale.
struct ProxyCaches: Sendable {
    var clusters: [ClusterKey: [(Cluster, UInt64)]] = [:]
    /// The cluster list of every namespace without DestinationPolicies of its own for other namespaces.
    var sharedClusters: ([Cluster], UInt64)?
    var outbound: [OutboundKey: (OutboundService, UInt64)] = [:]
    var inbound: [InboundKey: ([InboundPort], UInt64)] = [:]
    /// The inbound entry of each meshed pod, in `ClusterIndex.meshedByNamespace` order.
    var inboundByNamespace: [String: [([InboundPort], UInt64)]] = [:]
    /// Unresolved references per VirtualService (depend on the index and DestinationPolicies).
    var references: [ObjectKey: (weft.v1alpha1.VirtualService, [(RefError, String)])] = [:]
    /// Empty-subset warnings per DestinationPolicy (depend on the index).
    var subsetWarnings: [ObjectKey: (weft.v1alpha1.DestinationPolicy, [Diagnostic])] = [:]
    /// Every Service port in outbound order (by FQDN, then port), and where each Service's ports sit in it.
    var ports: [(ServiceInfo, ServicePortInfo)]?
    var positions: [ObjectKey: [Int]] = [:]
}

extension WeftCompilation {
    /// Builds every proxy's config. Fragments shared by many proxies are built once and shared (copy on write):
    /// one outbound list as producers route it, patched only for a namespace with VirtualServices of its own for
    /// other namespaces' Services; one cluster list, unless a namespace has DestinationPolicies of its own;
    /// inbound ports per pod shape.
    func proxyConfigs(memo: inout HashMemo, caches: inout ProxyCaches) -> [String: ProxyConfig] {
        let meshedByNamespace = self.index.meshedByNamespace
        guard !meshedByNamespace.isEmpty else { return [:] }
        let ports = caches.ports ?? self.outboundOrder(&caches)

        // Clusters.
        let consumerPolicyNamespaces = Set(
            self.policies.destinationPolicies.keys
                .filter { $0.namespace != $0.service.namespace }.map(\.namespace))
        let sharedClusters =
            caches.sharedClusters ?? self.clusterList(ports, consumer: nil, memo: &memo, caches: &caches)
        caches.sharedClusters = sharedClusters

        // Outbound, as producers route it.
        var global: [OutboundService] = []
        var globalHashes: [UInt64] = []
        global.reserveCapacity(ports.count)
        globalHashes.reserveCapacity(ports.count + 1)
        for (service, port) in ports {
            let entry = self.outboundEntry(service, port, consumer: nil, caches: &caches)
            global.append(entry.0)
            globalHashes.append(entry.1)
        }
        var overrides: [String: Set<ObjectKey>] = [:]
        for claim in self.policies.routes.keys where claim.namespace != claim.service.namespace {
            overrides[claim.namespace, default: []].insert(claim.service)
        }

        var proxies: [String: ProxyConfig] = [:]
        proxies.reserveCapacity(meshedByNamespace.values.reduce(0) { $0 + $1.count })
        let globalHash = combinedHash(globalHashes)
        for namespace in meshedByNamespace.keys.sorted() {
            // Every namespace shares the producers' list, unless it routes some Service its own way.
            var outbound = global
            var outboundHash = globalHash
            if let overridden = overrides[namespace], !overridden.isEmpty {
                var hashes = globalHashes
                for key in overridden.sorted() {
                    for position in caches.positions[key] ?? [] {
                        let (service, port) = ports[position]
                        let entry = self.outboundEntry(service, port, consumer: namespace, caches: &caches)
                        outbound[position] = entry.0
                        hashes[position] = entry.1
                    }
                }
                outboundHash = combinedHash(hashes)
            }
            let (clusters, clusterHash) =
                consumerPolicyNamespaces.contains(namespace)
                ? self.clusterList(ports, consumer: namespace, memo: &memo, caches: &caches) : sharedClusters
            let sharedHash = combinedHash([outboundHash, clusterHash])
            let pods = meshedByNamespace[namespace] ?? []
            let inbounds: [([InboundPort], UInt64)]
            if let cached = caches.inboundByNamespace[namespace], cached.count == pods.count {
                inbounds = cached
            } else {
                inbounds = pods.map { self.inboundEntry($0.info, memo: &memo, caches: &caches) }
                caches.inboundByNamespace[namespace] = inbounds
            }
            for i in pods.indices {
                let identity = pods[i].identity
                let version = hexHash(combinedHash([sharedHash, inbounds[i].1, pods[i].identityHash]))
                proxies[identity.id] = ProxyConfig(
                    version: version, proxy: identity, inbound: inbounds[i].0,
                    outbound: outbound, clusters: clusters)
            }
        }
        return proxies
    }

    private func outboundOrder(_ caches: inout ProxyCaches) -> [(ServiceInfo, ServicePortInfo)] {
        let ports = self.sortedServices
            .flatMap { service in service.ports.map { (service, $0) } }
            .sorted { ($0.0.fqdn, $0.1.port) < ($1.0.fqdn, $1.1.port) }
        caches.ports = ports
        caches.positions = [:]
        for (position, (service, _)) in ports.enumerated() {
            caches.positions[service.key, default: []].append(position)
        }
        return ports
    }

    /// The outbound entry of a Service port for `consumer` (nil: a namespace with no say in it).
    private func outboundEntry(
        _ service: ServiceInfo, _ port: ServicePortInfo, consumer: String?,
        caches: inout ProxyCaches
    ) -> (OutboundService, UInt64) {
        let namespace = consumer ?? ""
        let routing = self.policies.virtualService(for: service.key, consumer: consumer ?? service.key.namespace)?.key
        let key = OutboundKey(service: service.key, port: port.port, virtualService: routing)
        if let cached = caches.outbound[key] { return cached }
        let built = self.outboundService(service, port: port, consumer: namespace)
        let entry = (built, stableHash64(of: built))
        caches.outbound[key] = entry
        return entry
    }

    private func clusterList(
        _ ports: [(ServiceInfo, ServicePortInfo)], consumer: String?, memo: inout HashMemo,
        caches: inout ProxyCaches
    ) -> ([Cluster], UInt64) {
        var entries: [(Cluster, UInt64)] = []
        for (service, port) in ports {
            let policy = self.policies.destinationPolicy(for: service.key, consumer: consumer ?? service.key.namespace)
            let key = ClusterKey(service: service.key, port: port.port, policy: policy?.key)
            if let cached = caches.clusters[key] {
                entries.append(contentsOf: cached)
            } else {
                let built = self.clusters(of: service, port: port, policy: policy).map { ($0, memo.hash($0)) }
                caches.clusters[key] = built
                entries.append(contentsOf: built)
            }
        }
        entries.sort { $0.0.name < $1.0.name }
        return (entries.map(\.0), combinedHash(entries.map(\.1)))
    }

    private func inboundEntry(
        _ pod: PodInfo, memo: inout HashMemo, caches: inout ProxyCaches
    )
        -> ([InboundPort], UInt64)
    {
        let key = InboundKey(namespace: pod.key.namespace, labels: pod.labels, ports: pod.containerPorts)
        if let cached = caches.inbound[key] { return cached }
        let authorization = Self.authorizationTable(self.authorizationPolicies(of: pod))
        let ports = self.inbound(of: pod, authorization: authorization)
        let entry = (ports, memo.hash(ports))
        caches.inbound[key] = entry
        return entry
    }
}
