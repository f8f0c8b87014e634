/// A top-level Kubernetes object: it has a kind, an apiVersion and ObjectMeta.
public protocol KubeResource: Codable, Hashable, Sendable {
    /// `group/version`, or `v1` for the core group.
    static var apiVersion: String { get }
    static var kind: String { get }
    /// The lowercase plural used in REST paths (`pods`, `virtualservices`).
    static var plural: String { get }
    static var isNamespaced: Bool { get }

    var metadata: meta.v1.ObjectMeta { get set }
}

extension KubeResource {
    public static var isNamespaced: Bool { true }

    /// The API group, empty for the core group.
    public static var group: String {
        guard let slash = self.apiVersion.firstIndex(of: "/") else { return "" }
        return String(self.apiVersion[..<slash])
    }

    /// `namespace/name`, or `name` for cluster-scoped objects.
    public var key: ObjectKey { ObjectKey(namespace: self.metadata.namespace ?? "", name: self.metadata.name ?? "") }
}

/// The fields of a top-level object modelled through `Extensible`.
public protocol KubeResourceFields: Codable, Hashable, Sendable, EmptyInitializable {
    static var apiVersion: String { get }
    static var kind: String { get }
    static var plural: String { get }
    static var isNamespaced: Bool { get }
    var apiVersion: String? { get set }
    var kind: String? { get set }
    var metadata: meta.v1.ObjectMeta { get set }
}

extension KubeResourceFields {
    public static var isNamespaced: Bool { true }
}

extension Extensible: KubeResource where Fields: KubeResourceFields {
    public static var apiVersion: String { Fields.apiVersion }
    public static var kind: String { Fields.kind }
    public static var plural: String { Fields.plural }
    public static var isNamespaced: Bool { Fields.isNamespaced }

    public var metadata: meta.v1.ObjectMeta {
        get { self.fields.metadata }
        set { self.fields.metadata = newValue }
    }

    /// A new object of this kind with `apiVersion` and `kind` set.
    public static func new(namespace: String? = nil, name: String) -> Self {
        var fields = Fields()
        fields.apiVersion = Fields.apiVersion
        fields.kind = Fields.kind
        fields.metadata.namespace = namespace
        fields.metadata.name = name
        return Self(fields)
    }
}

/// `namespace/name`: how objects are indexed and named in messages.
public struct ObjectKey: Hashable, Comparable, Sendable, CustomStringConvertible, Codable {
    public var namespace: String
    public var name: String

    public init(namespace: String, name: String) {
        self.namespace = namespace
        self.name = name
    }

    /// Parses `namespace/name`; a bare name gets `defaultNamespace`.
    public init?(parsing text: String, defaultNamespace: String = "default") {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        switch parts.count {
        case 1 where !parts[0].isEmpty: self.init(namespace: defaultNamespace, name: String(parts[0]))
        case 2 where !parts[0].isEmpty && !parts[1].isEmpty:
            self.init(namespace: String(parts[0]), name: String(parts[1]))
        default: return nil
        }
    }

    public var description: String { self.namespace.isEmpty ? self.name : "\(self.namespace)/\(self.name)" }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.namespace, lhs.name) < (rhs.namespace, rhs.name)
    }
}
