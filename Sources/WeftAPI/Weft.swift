public import KubeModel

/// The Weft API group: `weft.dev/v1alpha1`.
public enum weft {
    public enum v1alpha1 {
        public static let group = "weft.dev"
        public static let version = "v1alpha1"
        public static let apiVersion = "weft.dev/v1alpha1"
        /// The mesh's root namespace: a MeshTLSPolicy here applies mesh-wide.
        public static let rootNamespace = "weft-system"
    }
}

/// The status every Weft resource carries: conditions in the Kubernetes convention.
public struct WeftStatus: Codable, Hashable, Sendable {
    public var observedGeneration: Int64?
    public var conditions: [meta.v1.Condition]?

    public init(observedGeneration: Int64? = nil, conditions: [meta.v1.Condition]? = nil) {
        self.observedGeneration = observedGeneration
        self.conditions = conditions
    }
}

/// A Weft custom resource: a spec the user writes and a status the controller writes.
public protocol WeftResource: KubeResource {
    associatedtype Spec: Codable & Hashable & Sendable
    var spec: Spec { get set }
    var status: WeftStatus? { get set }
    /// Every problem with the resource, each with its field path.
    func validate() -> [FieldError]
}

/// One problem with a field of a resource: `spec.http[2].route: weights must sum to 100, got 90`.
public struct FieldError: Codable, Hashable, Sendable, CustomStringConvertible {
    /// The field path, e.g. `spec.http[2].route`.
    public var path: String
    /// A sentence a person understands.
    public var message: String

    public init(_ path: String, _ message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { "\(self.path): \(self.message)" }
}
