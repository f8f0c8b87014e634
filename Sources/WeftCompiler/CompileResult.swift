import KubeModel
import ProxyConfig

/// Names a resource in results and messages: `shop/VirtualService/catalog`.
public struct ResourceRef: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public var kind: String
    public var namespace: String
    public var name: String

    public init(kind: String, namespace: String, name: String) {
        self.kind = kind
        self.namespace = namespace
        self.name = name
    }

    public init<R: KubeResource>(_ resource: R) {
        self.init(kind: R.kind, namespace: resource.metadata.namespace ?? "", name: resource.metadata.name ?? "")
    }

    public var description: String { "\(self.namespace)/\(self.kind)/\(self.name)" }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.namespace, lhs.kind, lhs.name) < (rhs.namespace, rhs.kind, rhs.name)
    }
}

/// What the compiler concludes about one resource: its conditions (without transition times: the status
/// writer merges them with what the cluster has) and the proxies whose config it affects.
public struct ResourceStatus: Hashable, Sendable, Codable {
    public var generation: Int64?
    public var conditions: [meta.v1.Condition]
    /// `namespace/pod` of every proxy whose config this resource shaped; `Programmed` waits for their ACKs.
    public var affectedProxies: [String]

    public init(generation: Int64?, conditions: [meta.v1.Condition], affectedProxies: [String] = []) {
        self.generation = generation
        self.conditions = conditions
        self.affectedProxies = affectedProxies
    }

    public func condition(_ type: String) -> meta.v1.Condition? {
        self.conditions.first { $0.type == type }
    }
}

/// A problem found while compiling, for people: `weftctl analyze` prints these.
public struct Diagnostic: Hashable, Sendable, Codable, Comparable, CustomStringConvertible {
    public enum Severity: String, Codable, Sendable, Hashable, Comparable {
        case error
        case warning

        public static func < (lhs: Self, rhs: Self) -> Bool { lhs == .error && rhs == .warning }
    }

    public var severity: Severity
    public var resource: ResourceRef
    /// The field path, e.g. `spec.http[0].route[1].destination.subset`; empty for the whole resource.
    public var field: String
    public var message: String

    public init(_ severity: Severity, _ resource: ResourceRef, field: String, _ message: String) {
        self.severity = severity
        self.resource = resource
        self.field = field
        self.message = message
    }

    /// `namespace/kind/name: field.path: reason`.
    public var description: String {
        self.field.isEmpty ? "\(self.resource): \(self.message)" : "\(self.resource): \(self.field): \(self.message)"
    }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.resource, lhs.field, lhs.severity, lhs.message) < (rhs.resource, rhs.field, rhs.severity, rhs.message)
    }
}

/// The output of one compile: deterministic for a given snapshot.
public struct CompileResult: Sendable, Hashable {
    /// Keyed by `namespace/pod`.
    public var proxies: [String: ProxyConfig]
    public var statuses: [ResourceRef: ResourceStatus]
    /// Sorted.
    public var diagnostics: [Diagnostic]

    public init(
        proxies: [String: ProxyConfig] = [:], statuses: [ResourceRef: ResourceStatus] = [:],
        diagnostics: [Diagnostic] = []
    ) {
        self.proxies = proxies
        self.statuses = statuses
        self.diagnostics = diagnostics
    }

    /// Whether any resource was rejected or any error found.
    public var hasErrors: Bool { self.diagnostics.contains { $0.severity == .error } }
}
