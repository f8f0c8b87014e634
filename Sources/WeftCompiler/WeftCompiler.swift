import KubeModel
import ProxyConfig
import WeftAPI

/// Turns cluster state into per-proxy configs, per-resource conditions and diagnostics.
///
/// `compile` is pure: no I/O, no clock, no randomness, no logging; the same snapshot gives the same result.
public struct WeftCompiler: Sendable {
    public init() {}

    public func compile(_ snapshot: WeftSnapshot) -> CompileResult {
        var session = CompileSession()
        return session.compile(snapshot)
    }
}

/// One compile's working state.
struct WeftCompilation {
    let index: ClusterIndex
    var policies: PolicyIndex
    let readyPods: Set<ObjectKey>
    let servicesByNamespace: [String: [ServiceInfo]]
    let sortedServices: [ServiceInfo]

    init(_ snapshot: WeftSnapshot) {
        let index = ClusterIndex(snapshot)
        self.index = index
        self.policies = PolicyIndex(snapshot, index: index)
        var ready = Set<ObjectKey>()
        for pod in snapshot.pods {
            let conditions = pod.status?.conditions ?? []
            if pod.fields.isReady || (conditions.isEmpty && pod.status?.phase == "Running") {
                ready.insert(pod.key)
            }
        }
        self.readyPods = ready
        let sorted = index.services.values.sorted { $0.key < $1.key }
        self.sortedServices = sorted
        self.servicesByNamespace = Dictionary(grouping: sorted, by: \.key.namespace)
    }

    mutating func run(_ snapshot: WeftSnapshot, memo: inout HashMemo) -> CompileResult {
        self.checkReferences(snapshot)
        var result = CompileResult()
        result.proxies = self.proxyConfigs(memo: &memo)
        result.statuses = self.statuses(snapshot)
        result.diagnostics = self.policies.diagnostics.sorted()
        return result
    }

    // MARK: - Proxies

    private struct OutboundKey: Hashable {
        var service: ObjectKey
        var port: Int
        /// The VirtualService that routes the port for this consumer, if any.
        var virtualService: ObjectKey?
        /// Short names resolve only in the Service's own namespace.
        var sameNamespace: Bool
    }

    private struct ClusterKey: Hashable {
        var service: ObjectKey
        var port: Int
        var policy: ObjectKey?
    }

    private func proxyConfigs(memo: inout HashMemo) -> [String: ProxyConfig] {
        let meshedByNamespace = Dictionary(grouping: self.index.pods.values.filter(\.meshed), by: \.key.namespace)
        var outboundCache: [OutboundKey: (OutboundService, String)] = [:]
        var clusterCache: [ClusterKey: [(Cluster, String)]] = [:]
        var proxies: [String: ProxyConfig] = [:]
        for namespace in meshedByNamespace.keys.sorted() {
            var outbound: [OutboundService] = []
            var clusters: [Cluster] = []
            var hashes: [String] = []
            for service in self.sortedServices {
                let routing = self.policies.virtualService(for: service.key, consumer: namespace)?.key
                let policy = self.policies.destinationPolicy(for: service.key, consumer: namespace)
                for port in service.ports {
                    let outboundKey = OutboundKey(service: service.key, port: port.port, virtualService: routing,
                                                  sameNamespace: namespace == service.key.namespace)
                    let entry: (OutboundService, String)
                    if let cached = outboundCache[outboundKey] {
                        entry = cached
                    } else {
                        let built = self.outboundService(service, port: port, consumer: namespace)
                        entry = (built, memo.hash(built))
                        outboundCache[outboundKey] = entry
                    }
                    outbound.append(entry.0)
                    hashes.append(entry.1)
                    let clusterKey = ClusterKey(service: service.key, port: port.port, policy: policy?.key)
                    let built: [(Cluster, String)]
                    if let cached = clusterCache[clusterKey] {
                        built = cached
                    } else {
                        built = self.clusters(of: service, port: port, policy: policy).map { ($0, memo.hash($0)) }
                        clusterCache[clusterKey] = built
                    }
                    for (cluster, hash) in built {
                        clusters.append(cluster)
                        hashes.append(hash)
                    }
                }
            }
            outbound.sort { ($0.host, $0.port) < ($1.host, $1.port) }
            clusters.sort { $0.name < $1.name }
            let sharedHash = combinedHash(hashes.sorted())
            for pod in (meshedByNamespace[namespace] ?? []).sorted(by: { $0.key < $1.key }) {
                let authorization = Self.authorizationTable(self.authorizationPolicies(of: pod))
                let identity = ProxyIdentity(
                    id: pod.key.description, namespace: pod.key.namespace, name: pod.key.name,
                    serviceAccount: pod.serviceAccount,
                    spiffeID: self.index.spiffeID(namespace: pod.key.namespace, serviceAccount: pod.serviceAccount),
                    trustDomain: self.index.settings.trustDomain, addresses: pod.addresses, zone: self.zone(of: pod))
                var config = ProxyConfig(proxy: identity, inbound: self.inbound(of: pod, authorization: authorization),
                                         outbound: outbound, clusters: clusters)
                let identityParts = [identity.id, identity.serviceAccount, identity.spiffeID, identity.trustDomain,
                                     identity.zone ?? ""] + identity.addresses
                config.version = combinedHash([sharedHash, memo.hash(config.inbound), combinedHash(identityParts)])
                proxies[pod.key.description] = config
            }
        }
        return proxies
    }

    /// A pod's zone, from the EndpointSlices that list it.
    private func zone(of pod: PodInfo) -> String? {
        pod.addresses.lazy.compactMap { self.index.zonesByIP[$0] }.first
    }
}
