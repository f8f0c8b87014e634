import KubeModel
import ProxyConfig
import WeftAPI

/// Annotation and label names the mesh reads.
public enum WeftLabels {
    /// Namespace label (`enabled`/`disabled`) or pod annotation/label that turns injection on or off.
    public static let inject = "weft.dev/inject"
    /// The injected sidecar container's name.
    public static let proxyContainer = "weft-proxy"
}

/// What the compiler needs of a pod, extracted once.
struct PodInfo: Hashable, Sendable {
    var key: ObjectKey
    var labels: [String: String]
    var serviceAccount: String
    var addresses: [String]
    var nodeName: String?
    var meshed: Bool
    var containerPorts: [ContainerPortInfo]
}

struct ContainerPortInfo: Hashable, Sendable {
    var name: String?
    var port: Int
}

/// A pod with a proxy, and that proxy's identity (depends on the index only).
struct MeshedPod: Sendable {
    var info: PodInfo
    var identity: ProxyIdentity
    var identityHash: UInt64
}

/// A Service port with its resolved protocol.
struct ServicePortInfo: Hashable, Sendable {
    var name: String?
    var port: Int
    var targetPort: IntOrString?
    var `protocol`: AppProtocol
}

/// What the compiler needs of a Service.
struct ServiceInfo: Hashable, Sendable {
    var key: ObjectKey
    var fqdn: String
    var clusterIPs: [String]
    var selector: [String: String]?
    var ports: [ServicePortInfo]
}

/// Lookup tables built once per compile from the snapshot.
struct ClusterIndex {
    let settings: MeshSettings
    var namespaces: [String: core.v1.Namespace] = [:]
    var pods: [ObjectKey: PodInfo] = [:]
    var podsByIP: [String: ObjectKey] = [:]
    var podsByNamespace: [String: [ObjectKey]] = [:]
    var services: [ObjectKey: ServiceInfo] = [:]
    var slicesByService: [ObjectKey: [discovery.v1.EndpointSlice]] = [:]
    /// Zones of endpoint addresses, from EndpointSlices.
    var zonesByIP: [String: String] = [:]
    /// Pods whose Ready condition is True (or, without conditions, that are Running).
    var readyPods: Set<ObjectKey> = []
    /// Meshed pods by namespace, sorted, with their proxy identity.
    var meshedByNamespace: [String: [MeshedPod]] = [:]
    /// Services sorted by key, and by namespace.
    var sortedServices: [ServiceInfo] = []
    var servicesByNamespace: [String: [ServiceInfo]] = [:]

    init(_ snapshot: WeftSnapshot) {
        self.settings = snapshot.settings
        for namespace in snapshot.namespaces {
            self.namespaces[namespace.metadata.name ?? ""] = namespace
        }
        for pod in snapshot.pods {
            guard let info = self.podInfo(pod) else { continue }
            let conditions = pod.status?.conditions ?? []
            // A pod being deleted is terminating: not ready, as the EndpointSlice controller reports it.
            let terminating = pod.metadata.deletionTimestamp != nil
            if !terminating && (pod.fields.isReady || (conditions.isEmpty && pod.status?.phase == "Running")) {
                self.readyPods.insert(info.key)
            }
            self.pods[info.key] = info
            self.podsByNamespace[info.key.namespace, default: []].append(info.key)
            for address in info.addresses { self.podsByIP[address] = info.key }
        }
        for key in self.podsByNamespace.keys { self.podsByNamespace[key]?.sort() }
        for service in snapshot.services {
            guard let info = self.serviceInfo(service) else { continue }
            self.services[info.key] = info
        }
        self.sortedServices = self.services.values.sorted { $0.key < $1.key }
        self.servicesByNamespace = Dictionary(grouping: self.sortedServices, by: \.key.namespace)
        for slice in snapshot.endpointSlices {
            guard let namespace = slice.metadata.namespace,
                let serviceName = slice.metadata.labels?[discovery.v1.serviceNameLabel]
            else { continue }
            self.slicesByService[ObjectKey(namespace: namespace, name: serviceName), default: []].append(slice)
        }
        for key in self.slicesByService.keys {
            self.slicesByService[key]?.sort { ($0.metadata.name ?? "") < ($1.metadata.name ?? "") }
        }
        // When slices disagree on an address's zone, the first by Service then slice name wins, whatever the
        // input order.
        for key in self.slicesByService.keys.sorted() {
            for slice in self.slicesByService[key] ?? [] {
                for endpoint in slice.endpoints ?? [] {
                    guard let zone = endpoint.zone else { continue }
                    for address in endpoint.addresses where self.zonesByIP[address] == nil {
                        self.zonesByIP[address] = zone
                    }
                }
            }
        }
        // Identities need the zones, which come from the EndpointSlices.
        for pod in self.pods.values where pod.meshed {
            self.meshedByNamespace[pod.key.namespace, default: []].append(self.meshedPod(pod))
        }
        for key in self.meshedByNamespace.keys { self.meshedByNamespace[key]?.sort { $0.info.key < $1.info.key } }
    }

    /// Whether a pod gets a proxy: its own `weft.dev/inject` annotation or label decides, else its namespace's
    /// label; a pod that already has the sidecar container is meshed.
    func isMeshed(_ pod: core.v1.Pod) -> Bool {
        if pod.spec?.containers.contains(where: { $0.name == WeftLabels.proxyContainer }) == true
            || pod.spec?.initContainers?.contains(where: { $0.name == WeftLabels.proxyContainer }) == true
        {
            return true
        }
        if let value = pod.metadata.annotations?[WeftLabels.inject] ?? pod.metadata.labels?[WeftLabels.inject] {
            return value == "enabled" || value == "true"
        }
        let namespace = self.namespaces[pod.metadata.namespace ?? ""]
        return namespace?.metadata.labels?[WeftLabels.inject] == "enabled"
    }

    private func podInfo(_ pod: core.v1.Pod) -> PodInfo? {
        guard let name = pod.metadata.name, let namespace = pod.metadata.namespace else { return nil }
        let phase = pod.status?.phase
        if phase == "Succeeded" || phase == "Failed" { return nil }
        var addresses = pod.status?.podIPs?.map(\.ip) ?? []
        if addresses.isEmpty, let ip = pod.status?.podIP { addresses = [ip] }
        let hostNetwork = pod.spec?.hostNetwork ?? false
        var ports: [ContainerPortInfo] = []
        for container in pod.spec?.containers ?? [] where container.name != WeftLabels.proxyContainer {
            for port in container.ports ?? [] where port.protocol == nil || port.protocol == "TCP" {
                ports.append(ContainerPortInfo(name: port.name, port: Int(port.containerPort)))
            }
        }
        return PodInfo(
            key: ObjectKey(namespace: namespace, name: name),
            labels: pod.metadata.labels ?? [:],
            serviceAccount: pod.spec?.serviceAccountName ?? "default",
            addresses: hostNetwork ? [] : addresses,
            nodeName: pod.spec?.nodeName,
            meshed: !hostNetwork && self.isMeshed(pod),
            containerPorts: ports
        )
    }

    private func serviceInfo(_ service: core.v1.Service) -> ServiceInfo? {
        guard let name = service.metadata.name, let namespace = service.metadata.namespace,
            service.spec?.type != "ExternalName"
        else { return nil }
        let spec = service.spec
        var ips = spec?.clusterIPs ?? []
        if ips.isEmpty, let ip = spec?.clusterIP { ips = [ip] }
        ips = ips.filter { $0 != "None" && !$0.isEmpty }
        let ports = (spec?.ports ?? []).filter { $0.protocol == nil || $0.protocol == "TCP" }.map { port in
            ServicePortInfo(
                name: port.name,
                port: Int(port.port),
                targetPort: port.targetPort,
                protocol: Self.protocolOf(appProtocol: port.appProtocol, portName: port.name)
            )
        }
        return ServiceInfo(
            key: ObjectKey(namespace: namespace, name: name),
            fqdn: "\(name).\(namespace).svc.\(self.settings.clusterDomain)",
            clusterIPs: ips,
            selector: spec?.selector,
            ports: ports.sorted { $0.port < $1.port }
        )
    }

    /// The protocol of a port from its `appProtocol`, else its name (`http`, `http-web`, `grpc-api`, ...),
    /// else `detect`.
    static func protocolOf(appProtocol: String?, portName: String?) -> AppProtocol {
        if let appProtocol = appProtocol?.lowercased() {
            switch appProtocol {
            case "http", "http1", "http/1.1": return .http1
            case "http2", "h2c", "kubernetes.io/h2c": return .http2
            case "grpc", "grpc-web": return .grpc
            case "tcp", "tls", "https", "mysql", "redis", "mongo", "postgresql", "kubernetes.io/ws",
                "kubernetes.io/wss":
                return .tcp
            default: break
            }
        }
        guard let name = portName?.lowercased() else { return .detect }
        let prefix = name.split(separator: "-", maxSplits: 1).first.map(String.init) ?? name
        switch prefix {
        case "http": return .http1
        case "http2", "h2c": return .http2
        case "grpc": return .grpc
        case "tcp", "tls", "https", "mysql", "redis", "mongo", "postgres": return .tcp
        default: return .detect
        }
    }

    // MARK: - Names

    /// Resolves a host as written in a resource of `namespace`: `catalog`, `catalog.shop`, `catalog.shop.svc`
    /// or the FQDN. Returns the Service key it names (which may not exist).
    func serviceKey(host: String, from namespace: String) -> ObjectKey? {
        let lower = host.lowercased()
        let suffix = ".svc.\(self.settings.clusterDomain)"
        var trimmed = lower
        if trimmed.hasSuffix(suffix) {
            trimmed = String(trimmed.dropLast(suffix.count))
        } else if trimmed.hasSuffix(".svc") {
            trimmed = String(trimmed.dropLast(4))
        }
        let parts = trimmed.split(separator: ".", omittingEmptySubsequences: false)
        switch parts.count {
        case 1: return ObjectKey(namespace: namespace, name: String(parts[0]))
        case 2: return ObjectKey(namespace: String(parts[1]), name: String(parts[0]))
        default: return nil
        }
    }

    private func meshedPod(_ pod: PodInfo) -> MeshedPod {
        let zone = pod.addresses.lazy.compactMap { self.zonesByIP[$0] }.first
        let identity = ProxyIdentity(
            id: pod.key.description, namespace: pod.key.namespace, name: pod.key.name,
            serviceAccount: pod.serviceAccount,
            spiffeID: self.spiffeID(namespace: pod.key.namespace, serviceAccount: pod.serviceAccount),
            trustDomain: self.settings.trustDomain, addresses: pod.addresses, zone: zone)
        let hash = stringHash(
            [
                identity.id, identity.serviceAccount, identity.spiffeID, identity.trustDomain,
                identity.zone ?? "",
            ] + identity.addresses)
        return MeshedPod(info: pod, identity: identity, identityHash: hash)
    }

    func spiffeID(namespace: String, serviceAccount: String) -> String {
        "spiffe://\(self.settings.trustDomain)/ns/\(namespace)/sa/\(serviceAccount)"
    }
}
