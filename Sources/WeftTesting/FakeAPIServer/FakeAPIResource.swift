import Foundation

/// A kind of resource `FakeAPIServer` serves, with the REST traits the real API server gives it.
struct FakeAPIResource: Sendable, Hashable {
    enum NameRule: Sendable, Hashable {
        /// DNS-1123 subdomain: lower case alphanumerics, `-` and `.`, at most 253 characters.
        case subdomain
        /// DNS-1123 label: lower case alphanumerics and `-`, at most 63 characters (Services, Namespaces).
        case label
    }

    var group: String
    var version: String
    var plural: String
    var kind: String
    var namespaced: Bool = true
    /// Has the `status` subresource: writes to the main resource ignore `status`, writes to `/status` change
    /// nothing else.
    var hasStatus: Bool = false
    /// A CustomResourceDefinition: no strategic merge patch, and field selector errors worded as for CRDs.
    var isCustom: Bool = false
    /// A delete answers with the object (`ReturnDeletedObject`) instead of a `Status` of success.
    var returnsDeletedObject: Bool = false
    /// Create-only and never stored (TokenReview).
    var isVirtual: Bool = false
    var nameRule: NameRule = .subdomain

    /// `group/version/plural`: the key of the resource in the store.
    var id: String { "\(self.group)/\(self.version)/\(self.plural)" }
    var apiVersion: String { self.group.isEmpty ? self.version : "\(self.group)/\(self.version)" }
    /// `virtualservices.weft.dev`, `pods`: how messages name the resource.
    var qualifiedResource: String { self.group.isEmpty ? self.plural : "\(self.plural).\(self.group)" }
    /// `VirtualService.weft.dev`, `Pod`: how validation messages name the kind.
    var qualifiedKind: String { self.group.isEmpty ? self.kind : "\(self.kind).\(self.group)" }

    static let all: [FakeAPIResource] = [
        FakeAPIResource(
            group: "", version: "v1", plural: "namespaces", kind: "Namespace", namespaced: false,
            returnsDeletedObject: true, nameRule: .label),
        FakeAPIResource(
            group: "", version: "v1", plural: "pods", kind: "Pod", hasStatus: true, returnsDeletedObject: true),
        FakeAPIResource(
            group: "", version: "v1", plural: "services", kind: "Service", hasStatus: true,
            returnsDeletedObject: true, nameRule: .label),
        FakeAPIResource(group: "", version: "v1", plural: "configmaps", kind: "ConfigMap"),
        FakeAPIResource(group: "", version: "v1", plural: "secrets", kind: "Secret"),
        FakeAPIResource(group: "", version: "v1", plural: "events", kind: "Event"),
        FakeAPIResource(
            group: "", version: "v1", plural: "serviceaccounts", kind: "ServiceAccount", returnsDeletedObject: true),
        FakeAPIResource(group: "events.k8s.io", version: "v1", plural: "events", kind: "Event"),
        FakeAPIResource(group: "apps", version: "v1", plural: "deployments", kind: "Deployment", hasStatus: true),
        FakeAPIResource(group: "discovery.k8s.io", version: "v1", plural: "endpointslices", kind: "EndpointSlice"),
        FakeAPIResource(group: "coordination.k8s.io", version: "v1", plural: "leases", kind: "Lease"),
        FakeAPIResource(
            group: "admissionregistration.k8s.io", version: "v1", plural: "mutatingwebhookconfigurations",
            kind: "MutatingWebhookConfiguration", namespaced: false),
        FakeAPIResource(
            group: "admissionregistration.k8s.io", version: "v1", plural: "validatingwebhookconfigurations",
            kind: "ValidatingWebhookConfiguration", namespaced: false),
        FakeAPIResource(
            group: "weft.dev", version: "v1alpha1", plural: "virtualservices", kind: "VirtualService",
            hasStatus: true, isCustom: true),
        FakeAPIResource(
            group: "weft.dev", version: "v1alpha1", plural: "destinationpolicies", kind: "DestinationPolicy",
            hasStatus: true, isCustom: true),
        FakeAPIResource(
            group: "weft.dev", version: "v1alpha1", plural: "meshtlspolicies", kind: "MeshTLSPolicy",
            hasStatus: true, isCustom: true),
        FakeAPIResource(
            group: "weft.dev", version: "v1alpha1", plural: "authorizationpolicies", kind: "AuthorizationPolicy",
            hasStatus: true, isCustom: true),
        FakeAPIResource(
            group: "authentication.k8s.io", version: "v1", plural: "tokenreviews", kind: "TokenReview",
            namespaced: false, isVirtual: true),
        // Served for `weftctl check`, which reads them.
        FakeAPIResource(
            group: "apiextensions.k8s.io", version: "v1", plural: "customresourcedefinitions",
            kind: "CustomResourceDefinition", namespaced: false, hasStatus: true),
        FakeAPIResource(
            group: "rbac.authorization.k8s.io", version: "v1", plural: "clusterroles", kind: "ClusterRole",
            namespaced: false),
        FakeAPIResource(
            group: "rbac.authorization.k8s.io", version: "v1", plural: "clusterrolebindings",
            kind: "ClusterRoleBinding", namespaced: false),
        FakeAPIResource(group: "rbac.authorization.k8s.io", version: "v1", plural: "roles", kind: "Role"),
        FakeAPIResource(group: "rbac.authorization.k8s.io", version: "v1", plural: "rolebindings", kind: "RoleBinding"),
    ]

    static func find(group: String, version: String, plural: String) -> FakeAPIResource? {
        self.all.first { $0.group == group && $0.version == version && $0.plural == plural }
    }

    static func find(apiVersion: String, kind: String) -> FakeAPIResource? {
        self.all.first { $0.apiVersion == apiVersion && $0.kind == kind }
    }

    /// Checks a name as the API server's validation does; nil when it is valid.
    func nameProblem(_ name: String) -> String? {
        let maxLength = self.nameRule == .label ? 63 : 253
        let labels =
            self.nameRule == .label ? [Substring(name)] : name.split(separator: ".", omittingEmptySubsequences: false)
        let valid =
            name.utf8.count <= maxLength && !name.isEmpty
            && labels.allSatisfy { label in
                guard let first = label.utf8.first, let last = label.utf8.last else { return false }
                return label.utf8.allSatisfy { Self.isLowerAlphanumeric($0) || $0 == UInt8(ascii: "-") }
                    && Self.isLowerAlphanumeric(first) && Self.isLowerAlphanumeric(last)
            }
        if valid { return nil }
        if name.utf8.count > maxLength { return "must be no more than \(maxLength) characters" }
        switch self.nameRule {
        case .label:
            return "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
                + "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
                + "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
        case .subdomain:
            return "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                + "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                + "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        }
    }

    private static func isLowerAlphanumeric(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }
}

/// A request path taken apart: `/apis/GROUP/VERSION[/namespaces/NS]/PLURAL[/NAME[/SUBRESOURCE]]`.
struct FakeAPIPath: Sendable, Hashable {
    var resource: FakeAPIResource
    /// nil for cluster-scoped resources and for lists and watches across all namespaces.
    var namespace: String?
    var name: String?
    var subresource: String?

    /// Parses a path; nil when no served resource lives there (the server answers 404).
    init?(_ path: String) {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true).map {
            String($0).removingPercentEncoding ?? String($0)
        }
        let group: String
        let version: String
        let rest: ArraySlice<String>
        if segments.first == "api", segments.count >= 3 {
            group = ""
            version = segments[1]
            rest = segments[2...]
        } else if segments.first == "apis", segments.count >= 4 {
            group = segments[1]
            version = segments[2]
            rest = segments[3...]
        } else {
            return nil
        }
        var parts = Array(rest)
        var namespace: String?
        if parts.count >= 3, parts[0] == "namespaces",
            let candidate = FakeAPIResource.find(group: group, version: version, plural: parts[2]), candidate.namespaced
        {
            namespace = parts[1]
            parts.removeFirst(2)
        }
        guard (1...3).contains(parts.count),
            let resource = FakeAPIResource.find(group: group, version: version, plural: parts[0])
        else { return nil }
        let name = parts.count >= 2 ? parts[1] : nil
        let subresource = parts.count == 3 ? parts[2] : nil
        // Namespaced objects are addressed inside their namespace; cluster-scoped ones never are.
        if resource.namespaced, namespace == nil, name != nil { return nil }
        if let subresource, subresource != "status" || !resource.hasStatus { return nil }
        self.resource = resource
        self.namespace = namespace
        self.name = name
        self.subresource = subresource
    }
}

/// Decodes `a=1&b=x%20y` (`+` is a space, as Go's `url.ParseQuery` reads it); a repeated key keeps the first value.
func fakeAPIParseQuery(_ query: String) -> [String: String] {
    var result: [String: String] = [:]
    for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
        let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        let decode = { (text: Substring) -> String in
            let spaced = text.replacingOccurrences(of: "+", with: " ")
            return spaced.removingPercentEncoding ?? spaced
        }
        let key = decode(parts[0])
        if result[key] == nil { result[key] = parts.count > 1 ? decode(parts[1]) : "" }
    }
    return result
}
