import KubeModel
import WeftCompiler

extension KubernetesSource {
    /// A namespace's labels from the informer cache; nil when it is not (yet) known.
    public func namespaceLabels(_ name: String) -> [String: String]? {
        self.namespaces.cache.get(ObjectKey(namespace: "", name: name)).map { $0.metadata.labels ?? [:] }
    }

    /// `defaults` with the injection keys of the `weft-config` ConfigMap applied.
    public func injectionSettings(defaults: InjectionSettings) -> InjectionSettings {
        let data = self.configMaps.cache.list().first { $0.metadata.name == Self.configMapName }?.data ?? [:]
        return defaults.applying(configMapData: data).0
    }
}
