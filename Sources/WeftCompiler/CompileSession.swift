import KubeModel
import ProxyConfig
import WeftAPI

/// A compiler that remembers work between compiles of successive snapshots, for the controller.
///
/// Results are identical to `WeftCompiler.compile` (a test holds it to that); the session only skips work whose
/// inputs did not change. What each cache depends on is stated where it is dropped, in `invalidate`: the
/// cluster index on the Kubernetes objects and settings; clusters on DestinationPolicies and MeshTLSPolicies;
/// outbound entries on DestinationPolicies and the VirtualService that routes them; inbound ports on
/// MeshTLSPolicies and AuthorizationPolicies. When in doubt a cache is dropped, never kept.
public struct CompileSession: Sendable {
    var memo = HashMemo()
    var validations = ValidationMemo()
    var caches = ProxyCaches()
    var previous: WeftSnapshot?
    var index: ClusterIndex?

    public init() {}

    public mutating func compile(_ snapshot: WeftSnapshot) -> CompileResult {
        let index = self.invalidate(for: snapshot)
        var compilation = WeftCompilation(snapshot, index: index, validations: &self.validations)
        let result = compilation.run(snapshot, memo: &self.memo, caches: &self.caches)
        self.memo.endGeneration()
        self.previous = snapshot
        self.index = index
        return result
    }

    /// Drops what `snapshot` makes stale and returns the cluster index to use.
    private mutating func invalidate(for snapshot: WeftSnapshot) -> ClusterIndex {
        guard let previous = self.previous, let index = self.index,
            previous.namespaces == snapshot.namespaces, previous.pods == snapshot.pods,
            previous.services == snapshot.services, previous.endpointSlices == snapshot.endpointSlices,
            previous.settings == snapshot.settings
        else {
            self.caches = ProxyCaches()
            return ClusterIndex(snapshot)
        }
        if previous.destinationPolicies != snapshot.destinationPolicies {
            self.caches.clusters = [:]
            self.caches.sharedClusters = nil
            self.caches.outbound = [:]
            self.caches.references = [:]
        }
        if previous.meshTLSPolicies != snapshot.meshTLSPolicies {
            self.caches.clusters = [:]
            self.caches.sharedClusters = nil
            self.caches.inbound = [:]
            self.caches.inboundByNamespace = [:]
        }
        if previous.authorizationPolicies != snapshot.authorizationPolicies {
            self.caches.inbound = [:]
            self.caches.inboundByNamespace = [:]
        }
        if previous.virtualServices != snapshot.virtualServices {
            var changed = Set<ObjectKey>()
            if previous.virtualServices.count == snapshot.virtualServices.count {
                for (old, new) in zip(previous.virtualServices, snapshot.virtualServices) where old != new {
                    changed.insert(old.key)
                    changed.insert(new.key)
                }
            } else {
                let before = Dictionary(previous.virtualServices.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
                let after = Dictionary(snapshot.virtualServices.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
                for (key, value) in after where before[key] != value { changed.insert(key) }
                for key in before.keys where after[key] == nil { changed.insert(key) }
            }
            self.caches.outbound = self.caches.outbound.filter { entry in
                entry.key.virtualService.map { !changed.contains($0) } ?? true
            }
        }
        return index
    }
}

extension WeftCompiler {
    /// A session that reuses work across compiles.
    public func session() -> CompileSession { CompileSession() }
}

/// Validation results by resource, reused while the resource is unchanged.
struct ValidationMemo: Sendable {
    private struct Table<R: WeftResource>: Sendable {
        var entries: [ResourceRef: (R, [FieldError])] = [:]
        var used: [ResourceRef: (R, [FieldError])] = [:]

        mutating func errors(_ resource: R) -> [FieldError] {
            let ref = ResourceRef(resource)
            if let (old, errors) = self.entries[ref] ?? self.used[ref], old == resource {
                self.used[ref] = (old, errors)
                return errors
            }
            let errors = resource.validate()
            self.used[ref] = (resource, errors)
            return errors
        }

        mutating func endGeneration() {
            self.entries = self.used
            self.used = [:]
        }
    }

    private var virtualServices = Table<weft.v1alpha1.VirtualService>()
    private var destinationPolicies = Table<weft.v1alpha1.DestinationPolicy>()
    private var meshTLSPolicies = Table<weft.v1alpha1.MeshTLSPolicy>()
    private var authorizationPolicies = Table<weft.v1alpha1.AuthorizationPolicy>()

    mutating func errors(_ resource: weft.v1alpha1.VirtualService) -> [FieldError] {
        self.virtualServices.errors(resource)
    }

    mutating func errors(_ resource: weft.v1alpha1.DestinationPolicy) -> [FieldError] {
        self.destinationPolicies.errors(resource)
    }

    mutating func errors(_ resource: weft.v1alpha1.MeshTLSPolicy) -> [FieldError] {
        self.meshTLSPolicies.errors(resource)
    }

    mutating func errors(_ resource: weft.v1alpha1.AuthorizationPolicy) -> [FieldError] {
        self.authorizationPolicies.errors(resource)
    }

    mutating func endGeneration() {
        self.virtualServices.endGeneration()
        self.destinationPolicies.endGeneration()
        self.meshTLSPolicies.endGeneration()
        self.authorizationPolicies.endGeneration()
    }
}

/// Stable hashes of config fragments, keyed by the fragment. Entries not used in a compile are dropped after
/// it, so the memo never outgrows one cluster's worth of fragments.
struct HashMemo: Sendable {
    private var clusters: [Cluster: UInt64] = [:]
    private var inbound: [[InboundPort]: UInt64] = [:]
    private var usedClusters: [Cluster: UInt64] = [:]
    private var usedInbound: [[InboundPort]: UInt64] = [:]

    mutating func hash(_ value: Cluster) -> UInt64 {
        let hash = self.clusters[value] ?? self.usedClusters[value] ?? stableHash64(of: value)
        self.usedClusters[value] = hash
        return hash
    }

    mutating func hash(_ value: [InboundPort]) -> UInt64 {
        let hash = self.inbound[value] ?? self.usedInbound[value] ?? stableHash64(of: value)
        self.usedInbound[value] = hash
        return hash
    }

    mutating func endGeneration() {
        self.clusters = self.usedClusters
        self.inbound = self.usedInbound
        self.usedClusters = [:]
        self.usedInbound = [:]
    }
}

/// Mixes fragment hashes in order (FNV-1a 64 over their bytes).
func combinedHash(_ parts: [UInt64]) -> UInt64 {
    var hash = FNV1a()
    for part in parts { hash.combine(part) }
    return hash.value
}

/// FNV-1a 64 of strings, each followed by a separator.
func stringHash(_ parts: [String]) -> UInt64 {
    var hash = FNV1a()
    for part in parts {
        hash.combine(bytes: part.utf8)
        hash.combine(UInt8(0x1f))
    }
    return hash.value
}
