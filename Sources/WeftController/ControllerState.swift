import Foundation
import KubeModel
import ProxyConfig
import Synchronization
import WeftCompiler

/// What the controller currently knows and serves: the last compile, the conditions per resource (with
/// transition times), and readiness. Shared between the reconciler (writes) and the HTTP server (reads).
public final class ControllerState: Sendable {
    struct Contents {
        var result = CompileResult()
        var tracker = StatusTracker()
        /// Identity of each Weft resource in the last snapshot, for `/status`.
        var resources: [ResourceRef: ResourceIdentity] = [:]
        var compiles = 0
        var lastCompile: Date?
    }

    /// apiVersion, kind and metadata of a resource, as `/status` shows them.
    struct ResourceIdentity: Sendable {
        var apiVersion: String
        var kind: String
        var metadata: meta.v1.ObjectMeta
    }

    private let contents = Mutex(Contents())

    public init() {}

    /// Records a compile of `snapshot` at `now`; returns the resources whose conditions changed.
    @discardableResult
    public func publish(_ result: CompileResult, of snapshot: WeftSnapshot, now: Date) -> Set<ResourceRef> {
        var identities: [ResourceRef: ResourceIdentity] = [:]
        func add<R: KubeResource>(_ resources: [R]) {
            for resource in resources {
                identities[ResourceRef(resource)] = ResourceIdentity(
                    apiVersion: R.apiVersion, kind: R.kind,
                    metadata: resource.metadata)
            }
        }
        add(snapshot.virtualServices)
        add(snapshot.destinationPolicies)
        add(snapshot.meshTLSPolicies)
        add(snapshot.authorizationPolicies)
        return self.contents.withLock { contents in
            contents.result = result
            contents.resources = identities
            contents.compiles += 1
            contents.lastCompile = now
            return contents.tracker.update(result.statuses, now: rfc3339(now))
        }
    }

    /// Whether at least one compile happened.
    public var hasCompiled: Bool { self.contents.withLock { $0.compiles > 0 } }

    /// How many compiles have been published.
    public var compileCount: Int { self.contents.withLock { $0.compiles } }

    public var result: CompileResult { self.contents.withLock { $0.result } }

    /// The conditions to write for a resource (transition times merged), if the last compile knows it.
    public func conditions(of ref: ResourceRef) -> [meta.v1.Condition]? {
        self.contents.withLock { $0.tracker.conditions[ref] }
    }

    /// Every Weft resource with its metadata and `status` (observedGeneration and conditions), sorted: the
    /// body of `/status`.
    public func statusDocument() -> JSONValue {
        self.contents.withLock { contents in
            let items: [JSONValue] = contents.resources.keys.sorted().compactMap { ref in
                guard let identity = contents.resources[ref] else { return nil }
                let conditions = contents.tracker.conditions[ref] ?? []
                let status = WeftStatusBody(observedGeneration: identity.metadata.generation, conditions: conditions)
                var metadata: JSONObject = ["name": .string(ref.name), "namespace": .string(ref.namespace)]
                if let generation = identity.metadata.generation { metadata["generation"] = .int(generation) }
                if let uid = identity.metadata.uid { metadata["uid"] = .string(uid) }
                if let version = identity.metadata.resourceVersion { metadata["resourceVersion"] = .string(version) }
                return .object([
                    "apiVersion": .string(identity.apiVersion),
                    "kind": .string(identity.kind),
                    "metadata": .object(metadata),
                    "status": (try? JSONValue.from(encodable: status)) ?? .null,
                ])
            }
            return .object([
                "apiVersion": "v1",
                "kind": "List",
                "items": .array(items),
            ])
        }
    }
}

/// The `status` of a Weft resource as written.
struct WeftStatusBody: Encodable {
    var observedGeneration: Int64?
    var conditions: [meta.v1.Condition]
}
