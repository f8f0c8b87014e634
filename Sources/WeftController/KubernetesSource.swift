import KubeClient
import KubeModel
import Logging
import Synchronization
import WeftAPI
import WeftCompiler

/// Cluster state from informers: Namespaces, Pods, Services, EndpointSlices, Deployments, the four Weft kinds,
/// and the `weft-config` ConfigMap in the root namespace.
public final class KubernetesSource: SnapshotSource {
    let namespaces: Informer<core.v1.Namespace>
    let pods: Informer<core.v1.Pod>
    let services: Informer<core.v1.Service>
    let endpointSlices: Informer<discovery.v1.EndpointSlice>
    let deployments: Informer<apps.v1.Deployment>
    let virtualServices: Informer<weft.v1alpha1.VirtualService>
    let destinationPolicies: Informer<weft.v1alpha1.DestinationPolicy>
    let meshTLSPolicies: Informer<weft.v1alpha1.MeshTLSPolicy>
    let authorizationPolicies: Informer<weft.v1alpha1.AuthorizationPolicy>
    let configMaps: Informer<core.v1.ConfigMap>
    private let changed = ChangeSignal()
    private let logger: Logger

    /// The ConfigMap holding mesh settings, in `rootNamespace`.
    public static let configMapName = "weft-config"

    public init(api: any KubeAPI, rootNamespace: String = weft.v1alpha1.rootNamespace,
                informer configuration: Informer<core.v1.Pod>.Configuration = .init(), logger: Logger) {
        self.logger = logger
        let notify: @Sendable (ObjectKey) async -> Void = { [changed] _ in changed.fire() }
        func informer<R: KubeResource>(_ type: R.Type, namespace: String? = nil, fieldSelector: String? = nil)
            -> Informer<R>
        {
            var settings = Informer<R>.Configuration(
                pageSize: configuration.pageSize, watchTimeoutSeconds: configuration.watchTimeoutSeconds,
                initialBackoff: configuration.initialBackoff, maximumBackoff: configuration.maximumBackoff)
            settings.namespace = namespace
            settings.fieldSelector = fieldSelector
            return Informer<R>(api: api, configuration: settings, logger: logger, onChange: notify)
        }
        self.namespaces = informer(core.v1.Namespace.self)
        self.pods = informer(core.v1.Pod.self)
        self.services = informer(core.v1.Service.self)
        self.endpointSlices = informer(discovery.v1.EndpointSlice.self)
        self.deployments = informer(apps.v1.Deployment.self)
        self.virtualServices = informer(weft.v1alpha1.VirtualService.self)
        self.destinationPolicies = informer(weft.v1alpha1.DestinationPolicy.self)
        self.meshTLSPolicies = informer(weft.v1alpha1.MeshTLSPolicy.self)
        self.authorizationPolicies = informer(weft.v1alpha1.AuthorizationPolicy.self)
        self.configMaps = informer(core.v1.ConfigMap.self, namespace: rootNamespace,
                                   fieldSelector: "metadata.name=\(Self.configMapName)")
    }

    public var hasSynced: Bool {
        get async {
            self.namespaces.hasSynced && self.pods.hasSynced && self.services.hasSynced
                && self.endpointSlices.hasSynced && self.deployments.hasSynced && self.virtualServices.hasSynced
                && self.destinationPolicies.hasSynced && self.meshTLSPolicies.hasSynced
                && self.authorizationPolicies.hasSynced && self.configMaps.hasSynced
        }
    }

    public func run(changed: @escaping @Sendable () -> Void) async throws {
        self.changed.set(changed)
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await self.namespaces.run() }
            group.addTask { try await self.pods.run() }
            group.addTask { try await self.services.run() }
            group.addTask { try await self.endpointSlices.run() }
            group.addTask { try await self.deployments.run() }
            group.addTask { try await self.virtualServices.run() }
            group.addTask { try await self.destinationPolicies.run() }
            group.addTask { try await self.meshTLSPolicies.run() }
            group.addTask { try await self.authorizationPolicies.run() }
            group.addTask { try await self.configMaps.run() }
        }
    }

    public func snapshot() async -> WeftSnapshot {
        var snapshot = WeftSnapshot(
            namespaces: self.namespaces.cache.list(),
            pods: self.pods.cache.list(),
            services: self.services.cache.list(),
            endpointSlices: self.endpointSlices.cache.list(),
            deployments: self.deployments.cache.list(),
            virtualServices: self.virtualServices.cache.list().map(Self.specOnly),
            destinationPolicies: self.destinationPolicies.cache.list().map(Self.specOnly),
            meshTLSPolicies: self.meshTLSPolicies.cache.list().map(Self.specOnly),
            authorizationPolicies: self.authorizationPolicies.cache.list().map(Self.specOnly))
        if let configMap = self.configMaps.cache.list().first(where: { $0.metadata.name == Self.configMapName }) {
            let (settings, problems) = MeshSettings.from(configMapData: configMap.data ?? [:])
            snapshot.settings = settings
            for problem in problems {
                self.logger.warning("weft-config problem", metadata: ["config.problem": "\(problem)"])
            }
        }
        return snapshot
    }

    /// A Weft resource as the compiler needs it: without status, resourceVersion and managedFields, so that
    /// the controller's own status writes do not look like changes to the compile session.
    static func specOnly<R: WeftResource>(_ resource: R) -> R {
        var copy = resource
        copy.status = nil
        copy.metadata.resourceVersion = nil
        copy.metadata.unknownFields = [:]
        return copy
    }

    /// The cached object of a Weft resource, for the status writer.
    func current(_ ref: ResourceRef) -> StatusWriter.Current? {
        let key = ObjectKey(namespace: ref.namespace, name: ref.name)
        func current<R: WeftResource>(_ informer: Informer<R>) -> StatusWriter.Current? {
            informer.cache.get(key).map {
                StatusWriter.Current(apiVersion: R.apiVersion, metadata: $0.metadata, status: $0.status)
            }
        }
        switch ref.kind {
        case weft.v1alpha1.VirtualService.kind: return current(self.virtualServices)
        case weft.v1alpha1.DestinationPolicy.kind: return current(self.destinationPolicies)
        case weft.v1alpha1.MeshTLSPolicy.kind: return current(self.meshTLSPolicies)
        case weft.v1alpha1.AuthorizationPolicy.kind: return current(self.authorizationPolicies)
        default: return nil
        }
    }
}

/// Where informers report a change: set once the reconciler runs.
final class ChangeSignal: Sendable {
    private let handler = Mutex<(@Sendable () -> Void)?>(nil)

    func set(_ handler: @escaping @Sendable () -> Void) {
        self.handler.withLock { $0 = handler }
    }

    func fire() {
        self.handler.withLock { $0 }?()
    }
}
