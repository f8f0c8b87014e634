import KubeModel
import ProxyConfig
import WeftAPI

/// One backend address of a Service port, before subset filtering.
struct EndpointInfo: Hashable, Sendable {
    var endpoint: Endpoint
    /// The pod's labels, for subset selection (empty when the address is not a known pod).
    var labels: [String: String]
}

extension WeftCompilation {
    /// The endpoints of one Service port: from its EndpointSlices, or, when it has none, from the pods its
    /// selector picks (so a folder of manifests without EndpointSlices still routes).
    func endpoints(of service: ServiceInfo, port: ServicePortInfo) -> [EndpointInfo] {
        var result: [EndpointInfo] = []
        if let slices = self.index.slicesByService[service.key], !slices.isEmpty {
            for slice in slices where slice.addressType == "IPv4" || slice.addressType == "IPv6" {
                let slicePort = slice.ports?.first { ($0.name ?? "") == (port.name ?? "") }
                guard let number = slicePort?.port.map(Int.init) ?? self.fallbackPort(port) else { continue }
                for endpoint in slice.endpoints ?? [] {
                    let podKey = endpoint.targetRef.flatMap { ref -> ObjectKey? in
                        guard ref.kind == "Pod", let name = ref.name else { return nil }
                        return ObjectKey(namespace: ref.namespace ?? service.key.namespace, name: name)
                    }
                    let ready = (endpoint.conditions?.ready ?? true) && !(endpoint.conditions?.terminating ?? false)
                    for address in endpoint.addresses {
                        let pod =
                            podKey.flatMap { self.index.pods[$0] }
                            ?? self.index.podsByIP[address].flatMap { self.index.pods[$0] }
                        result.append(
                            self.endpoint(
                                address: address, port: number, zone: endpoint.zone, ready: ready,
                                pod: pod))
                    }
                }
            }
        } else if let selector = service.selector, !selector.isEmpty {
            for key in self.index.podsByNamespace[service.key.namespace] ?? [] {
                guard let pod = self.index.pods[key], selectorMatches(selector, pod.labels),
                    let number = self.targetPort(port, in: pod)
                else { continue }
                for address in pod.addresses {
                    result.append(
                        self.endpoint(
                            address: address, port: number, zone: nil,
                            ready: self.readyPods.contains(key), pod: pod))
                }
            }
        }
        return result.sorted { ($0.endpoint.address, $0.endpoint.port) < ($1.endpoint.address, $1.endpoint.port) }
    }

    private func endpoint(address: String, port: Int, zone: String?, ready: Bool, pod: PodInfo?) -> EndpointInfo {
        var identity: String?
        if let pod, pod.meshed, self.tlsMode(of: pod, port: port) != .disable {
            identity = self.index.spiffeID(namespace: pod.key.namespace, serviceAccount: pod.serviceAccount)
        }
        let endpoint = Endpoint(
            address: address, port: port, zone: zone, weight: 1, ready: ready,
            pod: pod?.key.description, identity: identity)
        return EndpointInfo(endpoint: endpoint, labels: pod?.labels ?? [:])
    }

    private func fallbackPort(_ port: ServicePortInfo) -> Int? {
        if case .int(let number) = port.targetPort { return Int(number) }
        return port.targetPort == nil ? port.port : nil
    }

    /// The container port a Service port targets on a pod: a number, or a named container port.
    func targetPort(_ port: ServicePortInfo, in pod: PodInfo) -> Int? {
        switch port.targetPort {
        case .none: return port.port
        case .int(let number): return Int(number)
        case .string(let name): return pod.containerPorts.first { $0.name == name }?.port
        }
    }
}
