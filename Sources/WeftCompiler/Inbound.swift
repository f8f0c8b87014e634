import KubeModel
import ProxyConfig
import WeftAPI

extension WeftCompilation {
    /// The inbound ports of a pod: every container port and every port a Service targets on it.
    func inbound(of pod: PodInfo, authorization: AuthorizationTable) -> [InboundPort] {
        var ports: [Int: (name: String?, protocol: AppProtocol)] = [:]
        for service in self.selectingServices(of: pod) {
            for port in service.ports {
                guard let target = self.targetPort(port, in: pod) else { continue }
                if let existing = ports[target], existing.protocol != .detect { continue }
                ports[target] = (port.name, port.protocol)
            }
        }
        for port in pod.containerPorts where ports[port.port] == nil || ports[port.port]?.protocol == .detect {
            let name = ports[port.port]?.name ?? port.name
            ports[port.port] = (name, ClusterIndex.protocolOf(appProtocol: nil, portName: port.name))
        }
        return ports.keys.sorted().compactMap { number in
            guard let entry = ports[number] else { return nil }
            return InboundPort(
                port: number, name: entry.name, protocol: entry.protocol,
                tls: Self.inboundMode(self.tlsMode(of: pod, port: number)), appPort: number,
                authorization: authorization)
        }
    }

    /// Services in the pod's namespace whose selector picks it, by name.
    func selectingServices(of pod: PodInfo) -> [ServiceInfo] {
        self.servicesByNamespace[pod.key.namespace, default: []].filter { selectorMatches($0.selector, pod.labels) }
    }

    /// The mTLS mode of a pod's port: a workload policy (selector) over the namespace's policy over the
    /// mesh-wide one in the root namespace; `portLevel` over `mode` within each.
    func tlsMode(of pod: PodInfo, port: Int) -> weft.v1alpha1.TLSMode {
        let local = self.policies.meshTLS[pod.key.namespace] ?? []
        let workload = local.first { $0.spec.selector.map { $0.matches(pod.labels) } ?? false }
        let namespace = local.first { $0.spec.selector == nil }
        let root = (self.policies.meshTLS[self.index.settings.rootNamespace] ?? []).first { $0.spec.selector == nil }
        for policy in [workload, namespace, root].compactMap({ $0 }) {
            if let mode = policy.spec.portLevel?[String(port)].flatMap(weft.v1alpha1.TLSMode.init(rawValue:)) {
                return mode
            }
            if let mode = policy.spec.mode.flatMap(weft.v1alpha1.TLSMode.init(rawValue:)) { return mode }
        }
        return self.index.settings.defaultTLSMode
    }

    static func inboundMode(_ mode: weft.v1alpha1.TLSMode) -> InboundTLSMode {
        switch mode {
        case .strict: .strict
        case .permissive: .permissive
        case .disable: .disable
        }
    }

    /// The AuthorizationPolicies that select a pod: those of its namespace, and those of the root namespace
    /// (mesh-wide), DENY first.
    func authorizationPolicies(of pod: PodInfo) -> [weft.v1alpha1.AuthorizationPolicy] {
        var namespaces = [pod.key.namespace]
        if pod.key.namespace != self.index.settings.rootNamespace {
            namespaces.append(self.index.settings.rootNamespace)
        }
        return namespaces.flatMap { self.policies.authorization[$0] ?? [] }.filter { policy in
            policy.spec.selector.map { $0.matches(pod.labels) } ?? true
        }
    }

    static func authorizationTable(_ policies: [weft.v1alpha1.AuthorizationPolicy]) -> AuthorizationTable {
        let compiled: [AuthorizationPolicy] = policies.map { policy in
            AuthorizationPolicy(
                name: policy.key.description,
                action: policy.spec.action == "DENY" ? .deny : .allow,
                rules: (policy.spec.rules ?? []).map { rule in
                    AuthorizationRule(
                        from: rule.from?.map { source in
                            AuthorizationSource(
                                principals: source.principals, notPrincipals: source.notPrincipals,
                                namespaces: source.namespaces, notNamespaces: source.notNamespaces)
                        },
                        to: rule.to?.map { operation in
                            AuthorizationOperation(
                                methods: operation.methods, notMethods: operation.notMethods,
                                paths: operation.paths, notPaths: operation.notPaths,
                                ports: operation.ports?.map(Int.init),
                                notPorts: operation.notPorts?.map(Int.init))
                        })
                })
        }
        let sorted = compiled.sorted { (left: AuthorizationPolicy, right: AuthorizationPolicy) -> Bool in
            let leftRank = left.action == .deny ? 0 : 1
            let rightRank = right.action == .deny ? 0 : 1
            return leftRank == rightRank ? left.name < right.name : leftRank < rightRank
        }
        return AuthorizationTable(policies: sorted)
    }
}
