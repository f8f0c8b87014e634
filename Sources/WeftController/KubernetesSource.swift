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
    private let lists = ListCache()

    /// The ConfigMap holding mesh settings, in `rootNamespace`.
    public static let configMapName = "weft-config"

    public init(
        api: any KubeAPI, rootNamespace: String = weft.v1alpha1.rootNamespace,
        informer configuration: Informer<core.v1.Pod>.Configuration = .init(), logger: Logger
    ) {
        self.logger = logger
        let notify: @Sendable (ObjectKey) async -> Void = { [changed] _ in changed.fire() }
        func informer<R: KubeResource>(
            _ type: R.Type, namespace: String? = nil, fieldSelector: String? = nil
        )
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
        self.configMaps = informer(
            core.v1.ConfigMap.self, namespace: rootNamespace,
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
        // An informer whose cache did not change gives the same array as last time (same storage), so the
        // compile session sees it unchanged at no cost.
        var snapshot = WeftSnapshot(
            namespaces: self.lists.list(self.namespaces.cache) { $0 },
            pods: self.lists.list(self.pods.cache) { $0 },
            services: self.lists.list(self.services.cache) { $0 },
            endpointSlices: self.lists.list(self.endpointSlices.cache) { $0 },
            deployments: self.lists.list(self.deployments.cache) { $0 },
            virtualServices: self.lists.list(self.virtualServices.cache) { $0.map(Self.specOnly) },
            destinationPolicies: self.lists.list(self.destinationPolicies.cache) { $0.map(Self.specOnly) },
            meshTLSPolicies: self.lists.list(self.meshTLSPolicies.cache) { $0.map(Self.specOnly) },
            authorizationPolicies: self.lists.list(self.authorizationPolicies.cache) { $0.map(Self.specOnly) })
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
    public func current(_ ref: ResourceRef) -> StatusWriter.Current? {
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
///
/// The handler is boxed: a function stored directly in a `Mutex` is re-wrapped in reabstraction thunks on
/// every `withLock` write-back, and calls get slower with every change.
final class ChangeSignal: Sendable {
    private final class Handler: Sendable {
        let call: @Sendable () -> Void

        init(_ call: @escaping @Sendable () -> Void) {
            self.call = call
        }
    }

    private let handler = Mutex<Handler?>(nil)

    func set(_ handler: @escaping @Sendable () -> Void) {
        let box = Handler(handler)
        self.handler.withLock { $0 = box }
    }

    func fire() {
        let box = self.handler.withLock { $0 }
        box?.call()
    }
}

/// The last list taken of each informer cache, reused while the cache's resourceVersion and size are the same.
final class ListCache: Sendable {
    private struct Entry: @unchecked Sendable {
        // Safe: the array is an immutable value of a Sendable element type, stored as `Any` only to key the
        // table by kind.
        var version: String
        var count: Int
        var list: Any
    }

    private let entries = Mutex<[String: Entry]>([:])

    func list<R: KubeResource>(_ cache: InformerCache<R>, _ transform: ([R]) -> [R]) -> [R] {
        let version = cache.resourceVersion ?? ""
        let count = cache.count
        if let entry = self.entries.withLock({ $0[R.kind] }), entry.version == version, entry.count == count,
            let list = entry.list as? [R]
        {
            return list
        }
        let list = transform(cache.list())
        self.entries.withLock { $0[R.kind] = Entry(version: version, count: count, list: list) }
        return list
    }
}
