import KubeModel
import WeftAPI

/// What the validating webhook answers for a Weft resource: the field errors `weftctl analyze` prints for it
/// (WeftAPI's validation), and, when the cluster is known, the compiler's warnings about it (a selector that
/// matches no pod, a subset no endpoint matches).
public enum ResourceAdmission {
    public static let kinds = ["VirtualService", "DestinationPolicy", "MeshTLSPolicy", "AuthorizationPolicy"]

    public struct Verdict: Hashable, Sendable {
        /// `field.path: message`; the resource is refused when there is any.
        public var errors: [String] = []
        /// `field.path: message`: legal, but probably not what was meant.
        public var warnings: [String] = []
    }

    /// Reviews `object` (a `kind` of `weft.dev/v1alpha1`) as created in `namespace`; with `snapshot`, compiles it
    /// in place of its current version to collect the compiler's warnings about it.
    public static func review(
        kind: String, object: JSONValue, namespace: String?, snapshot: WeftSnapshot? = nil
    ) -> Verdict {
        var object = object
        if case .object(var members) = object {
            var metadata = members["metadata"]?.objectValue ?? [:]
            if metadata["namespace"]?.stringValue?.isEmpty ?? true, let namespace {
                metadata["namespace"] = .string(namespace)
            }
            // A generated name is not known yet; validate the prefix as a name.
            if metadata["name"]?.stringValue?.isEmpty ?? true, let prefix = metadata["generateName"]?.stringValue {
                metadata["name"] = .string(prefix + "x")
            }
            members["metadata"] = .object(metadata)
            object = .object(members)
        }
        switch kind {
        case "VirtualService":
            return self.review(weft.v1alpha1.VirtualService.self, object, snapshot, \.virtualServices)
        case "DestinationPolicy":
            return self.review(weft.v1alpha1.DestinationPolicy.self, object, snapshot, \.destinationPolicies)
        case "MeshTLSPolicy":
            return self.review(weft.v1alpha1.MeshTLSPolicy.self, object, snapshot, \.meshTLSPolicies)
        case "AuthorizationPolicy":
            return self.review(weft.v1alpha1.AuthorizationPolicy.self, object, snapshot, \.authorizationPolicies)
        default:
            return Verdict(errors: ["kind: \(kind) is not a Weft kind (\(self.kinds.joined(separator: ", ")))"])
        }
    }

    private static func review<R: WeftResource>(
        _ type: R.Type, _ object: JSONValue, _ snapshot: WeftSnapshot?,
        _ list: WritableKeyPath<WeftSnapshot, [R]>
    ) -> Verdict {
        let resource: R
        do {
            resource = try JSONValueDecoder().decode(R.self, from: object)
        } catch {
            return Verdict(errors: [Injector.describe(error, under: "")])
        }
        var verdict = Verdict(errors: resource.validate().map(\.description))
        guard verdict.errors.isEmpty, var snapshot else { return verdict }
        snapshot[keyPath: list].removeAll {
            $0.metadata.namespace == resource.metadata.namespace && $0.metadata.name == resource.metadata.name
        }
        snapshot[keyPath: list].append(resource)
        let ref = ResourceRef(resource)
        let result = WeftCompiler().compile(snapshot)
        verdict.warnings = result.diagnostics.filter { $0.resource == ref && $0.severity == .warning }.map {
            $0.field.isEmpty ? $0.message : "\($0.field): \($0.message)"
        }
        return verdict
    }
}
