import KubeModel
import WeftAPI

/// The valid Weft resources, with who wins where two claim the same thing, and every finding per resource.
struct PolicyIndex {
    /// `(service, namespace of the VirtualService)` -> the VirtualService that owns routing for that host there.
    var routes: [ClaimKey: weft.v1alpha1.VirtualService] = [:]
    var destinationPolicies: [ClaimKey: weft.v1alpha1.DestinationPolicy] = [:]
    /// Valid MeshTLSPolicies by namespace, oldest first.
    var meshTLS: [String: [weft.v1alpha1.MeshTLSPolicy]] = [:]
    /// Valid AuthorizationPolicies by namespace.
    var authorization: [String: [weft.v1alpha1.AuthorizationPolicy]] = [:]
    var findings: [ResourceRef: ResourceFindings] = [:]
    var diagnostics: [Diagnostic] = []

    struct ClaimKey: Hashable {
        var service: ObjectKey
        var namespace: String
    }

    init(_ snapshot: WeftSnapshot, index: ClusterIndex, validations: inout ValidationMemo) {
        for vs in Self.oldestFirst(snapshot.virtualServices) where self.accept(vs, &validations) {
            let ref = ResourceRef(vs)
            let namespace = vs.metadata.namespace ?? ""
            var claims: [ClaimKey] = []
            for (i, host) in vs.spec.hosts.enumerated() {
                guard let service = index.serviceKey(host: host, from: namespace) else {
                    self.missingBackend(ref, field: "spec.hosts[\(i)]", "host \"\(host)\" does not match a Service")
                    continue
                }
                if index.services[service] == nil {
                    self.missingBackend(
                        ref, field: "spec.hosts[\(i)]",
                        "host \"\(host)\" does not match a Service (looked for \(service))")
                }
                let claim = ClaimKey(service: service, namespace: namespace)
                if let owner = self.routes[claim] {
                    self.conflict(
                        ref, field: "spec.hosts[\(i)]",
                        "host \"\(host)\" is already routed by VirtualService \(owner.key), which is older")
                } else if !claims.contains(claim) {
                    claims.append(claim)
                }
            }
            // A VirtualService that loses any host is not accepted, so it routes none of its hosts.
            guard self.findings[ref]?.conflicts.isEmpty ?? true else { continue }
            for claim in claims {
                self.routes[claim] = vs
            }
        }
        for dp in Self.oldestFirst(snapshot.destinationPolicies) where self.accept(dp, &validations) {
            let ref = ResourceRef(dp)
            let namespace = dp.metadata.namespace ?? ""
            guard let service = index.serviceKey(host: dp.spec.host, from: namespace) else {
                self.missingBackend(ref, field: "spec.host", "host \"\(dp.spec.host)\" does not match a Service")
                continue
            }
            if index.services[service] == nil {
                self.missingBackend(
                    ref, field: "spec.host",
                    "host \"\(dp.spec.host)\" does not match a Service (looked for \(service))")
            }
            let claim = ClaimKey(service: service, namespace: namespace)
            if let owner = self.destinationPolicies[claim] {
                self.conflict(
                    ref, field: "spec.host",
                    "host \"\(dp.spec.host)\" already has DestinationPolicy \(owner.key), which is older")
            } else {
                self.destinationPolicies[claim] = dp
            }
        }
        var namespaceWide: [String: weft.v1alpha1.MeshTLSPolicy] = [:]
        for policy in Self.oldestFirst(snapshot.meshTLSPolicies) where self.accept(policy, &validations) {
            let namespace = policy.metadata.namespace ?? ""
            if policy.spec.selector == nil {
                if let owner = namespaceWide[namespace] {
                    self.conflict(
                        ResourceRef(policy), field: "",
                        "namespace \(namespace) already has a MeshTLSPolicy without selector, \(owner.key), which is older"
                    )
                    continue
                }
                namespaceWide[namespace] = policy
            }
            self.meshTLS[namespace, default: []].append(policy)
        }
        for policy in Self.oldestFirst(snapshot.authorizationPolicies) where self.accept(policy, &validations) {
            self.authorization[policy.metadata.namespace ?? "", default: []].append(policy)
        }
    }

    /// The VirtualService that routes `service` for clients in `namespace`: one in the client's own namespace
    /// wins over one in the Service's namespace (consumer over producer, as in the Gateway API's GAMMA).
    func virtualService(for service: ObjectKey, consumer namespace: String) -> weft.v1alpha1.VirtualService? {
        self.routes[ClaimKey(service: service, namespace: namespace)]
            ?? self.routes[ClaimKey(service: service, namespace: service.namespace)]
    }

    func destinationPolicy(for service: ObjectKey, consumer namespace: String) -> weft.v1alpha1.DestinationPolicy? {
        self.destinationPolicies[ClaimKey(service: service, namespace: namespace)]
            ?? self.destinationPolicies[ClaimKey(service: service, namespace: service.namespace)]
    }

    // MARK: - Helpers

    private mutating func accept(_ resource: weft.v1alpha1.VirtualService, _ validations: inout ValidationMemo) -> Bool
    {
        self.record(resource, validations.errors(resource))
    }

    private mutating func accept(
        _ resource: weft.v1alpha1.DestinationPolicy, _ validations: inout ValidationMemo
    )
        -> Bool
    {
        self.record(resource, validations.errors(resource))
    }

    private mutating func accept(_ resource: weft.v1alpha1.MeshTLSPolicy, _ validations: inout ValidationMemo) -> Bool {
        self.record(resource, validations.errors(resource))
    }

    private mutating func accept(
        _ resource: weft.v1alpha1.AuthorizationPolicy, _ validations: inout ValidationMemo
    )
        -> Bool
    {
        self.record(resource, validations.errors(resource))
    }

    /// Records validation errors as findings and diagnostics; true when there are none.
    private mutating func record<R: WeftResource>(_ resource: R, _ errors: [FieldError]) -> Bool {
        let ref = ResourceRef(resource)
        self.findings[ref, default: .init()].invalid = errors.map(\.description)
        for error in errors {
            self.diagnostics.append(Diagnostic(.error, ref, field: error.path, error.message))
        }
        return errors.isEmpty
    }

    /// A host that names no Service: `ResolvedRefs=False/BackendNotFound` and an error diagnostic.
    private mutating func missingBackend(_ ref: ResourceRef, field: String, _ message: String) {
        self.findings[ref, default: .init()].missingBackend("\(field): \(message)")
        self.diagnostics.append(Diagnostic(.error, ref, field: field, message))
    }

    private mutating func conflict(_ ref: ResourceRef, field: String, _ message: String) {
        self.findings[ref, default: .init()].conflicts.append(field.isEmpty ? message : "\(field): \(message)")
        self.diagnostics.append(Diagnostic(.error, ref, field: field, message))
    }

    /// Oldest first (creationTimestamp), then by namespace and name: who wins a conflict is stable.
    static func oldestFirst<R: KubeResource>(_ resources: [R]) -> [R] {
        let keys = resources.map { resource in
            let metadata = resource.metadata
            return (metadata.creationTimestamp ?? "", metadata.namespace ?? "", metadata.name ?? "")
        }
        return resources.indices.sorted { keys[$0] < keys[$1] }.map { resources[$0] }
    }
}
