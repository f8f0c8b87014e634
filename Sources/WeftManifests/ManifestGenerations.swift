import KubeModel
import WeftAPI
import WeftCompiler

/// `metadata.generation` for resources read from files, as the API server keeps it: 1 when a resource is first
/// seen, one more each time its spec changes, unchanged when only metadata or status do. A generation written
/// in the file is ignored (the API server ignores a client's too). With it, conditions carry
/// `observedGeneration` in manifests mode as in a cluster.
public enum ManifestGenerations {
    /// `snapshot`'s Weft resources with generations carried on from `previous` (the last read of the same
    /// folder; nil on the first read).
    public static func assign(_ snapshot: WeftSnapshot, previous: WeftSnapshot?) -> WeftSnapshot {
        var snapshot = snapshot
        snapshot.virtualServices = Self.assign(snapshot.virtualServices, previous: previous?.virtualServices)
        snapshot.destinationPolicies = Self.assign(
            snapshot.destinationPolicies, previous: previous?.destinationPolicies)
        snapshot.meshTLSPolicies = Self.assign(snapshot.meshTLSPolicies, previous: previous?.meshTLSPolicies)
        snapshot.authorizationPolicies = Self.assign(
            snapshot.authorizationPolicies, previous: previous?.authorizationPolicies)
        return snapshot
    }

    static func assign<R: WeftResource>(_ resources: [R], previous: [R]?) -> [R] {
        var before: [String: R] = [:]
        for resource in previous ?? [] { before[Self.key(resource)] = resource }
        return resources.map { resource in
            var resource = resource
            if let old = before[Self.key(resource)], let generation = old.metadata.generation {
                resource.metadata.generation = old.spec == resource.spec ? generation : generation + 1
            } else {
                resource.metadata.generation = 1
            }
            return resource
        }
    }

    private static func key<R: WeftResource>(_ resource: R) -> String {
        "\(resource.metadata.namespace ?? "")/\(resource.metadata.name ?? "")"
    }
}
