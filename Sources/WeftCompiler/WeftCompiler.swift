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
    var readyPods: Set<ObjectKey> { self.index.readyPods }
    var servicesByNamespace: [String: [ServiceInfo]] { self.index.servicesByNamespace }
    var sortedServices: [ServiceInfo] { self.index.sortedServices }

    init(_ snapshot: WeftSnapshot, index: ClusterIndex, validations: inout ValidationMemo) {
        self.index = index
        self.policies = PolicyIndex(snapshot, index: index, validations: &validations)
        validations.endGeneration()
    }

    mutating func run(_ snapshot: WeftSnapshot, memo: inout HashMemo, caches: inout ProxyCaches) -> CompileResult {
        self.checkReferences(snapshot, caches: &caches)
        var result = CompileResult()
        result.proxies = self.proxyConfigs(memo: &memo, caches: &caches)
        result.statuses = self.statuses(snapshot)
        result.diagnostics = self.policies.diagnostics.sorted()
        return result
    }
}
