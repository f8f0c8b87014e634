import KubeClient
import KubeModel
import Logging
import Synchronization
import WeftCompiler

/// Publishes the mesh's trust bundle as the ConfigMap `weft-ca-root` (key `ca.crt`) in every namespace, as
/// Istio does with `istio-ca-root-cert`: the injected proxy mounts it to check the controller's certificate
/// (`--controller-ca`) before it has an SVID. Written by the leader after a compile (server-side apply, field
/// manager `weft-controller`), once per namespace per bundle; a namespace whose write failed is tried again at
/// the next compile. The Kubernetes system namespaces are skipped.
public final class TrustBundlePublisher: CompileResultSink {
    public static let configMapName = "weft-ca-root"
    public static let key = "ca.crt"
    static let skipped: Set<String> = ["kube-system", "kube-public", "kube-node-lease"]

    private let api: any KubeAPI
    private let bundle: String
    private let isLeader: @Sendable () -> Bool
    private let logger: Logger
    /// Namespaces that hold the current bundle (as this replica wrote it).
    private let published = Mutex<Set<String>>([])

    public init(api: any KubeAPI, bundle: String, isLeader: @escaping @Sendable () -> Bool, logger: Logger) {
        self.api = api
        self.bundle = bundle
        self.isLeader = isLeader
        self.logger = logger
    }

    public func apply(_ result: CompileResult, snapshot: WeftSnapshot, state: ControllerState) async {
        guard self.isLeader() else {
            // A replica that leads later writes every namespace again (idempotent).
            self.published.withLock { $0 = [] }
            return
        }
        let namespaces = Set(snapshot.namespaces.compactMap(\.metadata.name)).subtracting(Self.skipped)
        let todo = namespaces.subtracting(self.published.withLock { $0 }).sorted()
        for namespace in todo {
            do {
                _ = try await self.api.patch(
                    core.v1.ConfigMap.self, namespace: namespace, name: Self.configMapName,
                    patch: .apply(try JSONValue.from(encodable: self.configMap(namespace: namespace))),
                    options: PatchOptions(fieldManager: "weft-controller", force: true))
                self.published.withLock { _ = $0.insert(namespace) }
            } catch {
                self.logger.warning(
                    "could not publish the trust bundle; retrying at the next compile",
                    metadata: ["k8s.namespace": "\(namespace)", "error": "\(error)"])
            }
        }
        // Namespaces that went away are forgotten (one that comes back is written again).
        self.published.withLock { $0.formIntersection(namespaces) }
    }

    func configMap(namespace: String) -> core.v1.ConfigMap {
        var configMap = core.v1.ConfigMap()
        configMap.apiVersion = core.v1.ConfigMapFields.apiVersion
        configMap.kind = core.v1.ConfigMapFields.kind
        configMap.metadata.name = Self.configMapName
        configMap.metadata.namespace = namespace
        configMap.metadata.labels = ["app.kubernetes.io/managed-by": "weft-controller", "weft.dev/ca-root": "true"]
        configMap.data = [Self.key: self.bundle]
        return configMap
    }
}
