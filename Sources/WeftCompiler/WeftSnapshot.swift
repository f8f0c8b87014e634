import KubeModel
import WeftAPI

/// Everything the compiler reads: an immutable view of the cluster. Every input of `WeftCompiler.compile`
/// is a field here, and nothing else is read (Istio's cache-key lesson).
public struct WeftSnapshot: Sendable, Hashable {
    public var namespaces: [core.v1.Namespace]
    public var pods: [core.v1.Pod]
    public var services: [core.v1.Service]
    public var endpointSlices: [discovery.v1.EndpointSlice]
    public var deployments: [apps.v1.Deployment]
    public var virtualServices: [weft.v1alpha1.VirtualService]
    public var destinationPolicies: [weft.v1alpha1.DestinationPolicy]
    public var meshTLSPolicies: [weft.v1alpha1.MeshTLSPolicy]
    public var authorizationPolicies: [weft.v1alpha1.AuthorizationPolicy]
    public var settings: MeshSettings

    public init(
        namespaces: [core.v1.Namespace] = [], pods: [core.v1.Pod] = [], services: [core.v1.Service] = [],
        endpointSlices: [discovery.v1.EndpointSlice] = [], deployments: [apps.v1.Deployment] = [],
        virtualServices: [weft.v1alpha1.VirtualService] = [],
        destinationPolicies: [weft.v1alpha1.DestinationPolicy] = [],
        meshTLSPolicies: [weft.v1alpha1.MeshTLSPolicy] = [],
        authorizationPolicies: [weft.v1alpha1.AuthorizationPolicy] = [], settings: MeshSettings = MeshSettings()
    ) {
        self.namespaces = namespaces
        self.pods = pods
        self.services = services
        self.endpointSlices = endpointSlices
        self.deployments = deployments
        self.virtualServices = virtualServices
        self.destinationPolicies = destinationPolicies
        self.meshTLSPolicies = meshTLSPolicies
        self.authorizationPolicies = authorizationPolicies
        self.settings = settings
    }
}

/// Mesh-wide settings (the `weft-config` ConfigMap in the controller).
public struct MeshSettings: Codable, Sendable, Hashable {
    /// The SPIFFE trust domain.
    public var trustDomain: String
    /// The cluster DNS suffix: `<svc>.<ns>.svc.<clusterDomain>`.
    public var clusterDomain: String
    /// The mesh's root namespace; MeshTLS and Authorization policies here apply mesh-wide.
    public var rootNamespace: String
    /// The inbound mTLS mode when no MeshTLSPolicy applies.
    public var defaultTLSMode: weft.v1alpha1.TLSMode

    public init(
        trustDomain: String = "cluster.local", clusterDomain: String = "cluster.local",
        rootNamespace: String = weft.v1alpha1.rootNamespace, defaultTLSMode: weft.v1alpha1.TLSMode = .permissive
    ) {
        self.trustDomain = trustDomain
        self.clusterDomain = clusterDomain
        self.rootNamespace = rootNamespace
        self.defaultTLSMode = defaultTLSMode
    }

    /// Reads the `data` of the `weft-config` ConfigMap; unknown or malformed keys keep their defaults and
    /// are reported.
    public static func from(configMapData data: [String: String]) -> (MeshSettings, [String]) {
        var settings = MeshSettings()
        var problems: [String] = []
        if let value = data["trustDomain"] { settings.trustDomain = value }
        if let value = data["clusterDomain"] { settings.clusterDomain = value }
        if let value = data["rootNamespace"] { settings.rootNamespace = value }
        if let value = data["defaultTLSMode"] {
            if let mode = weft.v1alpha1.TLSMode(rawValue: value) {
                settings.defaultTLSMode = mode
            } else {
                problems.append("data.defaultTLSMode: must be one of STRICT, PERMISSIVE, DISABLE, got \"\(value)\"")
            }
        }
        return (settings, problems)
    }
}
