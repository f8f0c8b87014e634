import Foundation
import KubeModel

/// What a list or watch selects: one resource, maybe one namespace, label and field selectors.
struct FakeObjectFilter: Sendable {
    var resource: FakeAPIResource
    /// nil: every namespace.
    var namespace: String?
    var labels = FakeLabelSelector.everything
    var fields = FakeFieldSelector.everything

    func matches(_ object: JSONValue, key: ObjectKey) -> Bool {
        if let namespace = self.namespace, key.namespace != namespace { return false }
        return self.fields.matches(namespace: key.namespace, name: key.name)
            && self.labels.matches(FakeObject.labels(object))
    }
}

/// The query of a list.
struct FakeListQuery: Sendable {
    var filter: FakeObjectFilter
    var limit: Int?
    var continueToken: String?
    /// `resourceVersionMatch=Exact`: the list as it was at this version.
    var exactVersion: Int64?
}

/// A continue token as the API server makes one: base64url of `{"v":"meta.k8s.io/v1","rv":N,"start":"key\u0000"}`.
struct FakeContinueToken: Codable, Sendable, Hashable {
    var v: String = "meta.k8s.io/v1"
    var rv: Int64
    /// The first key of the next page (the last key sent, and a NUL).
    var start: String

    init(rv: Int64, lastKey: String) {
        self.rv = rv
        self.start = lastKey + "\u{0}"
    }

    var encoded: String {
        let data = (try? JSONEncoder().encode(self)) ?? Data()
        return data.base64EncodedString().replacing("+", with: "-").replacing("/", with: "_")
            .replacing("=", with: "")
    }

    init(decoding text: String) throws(FakeAPIError) {
        var base64 = text.replacing("-", with: "+").replacing("_", with: "/")
        while base64.utf8.count % 4 != 0 { base64 += "=" }
        guard let data = Data(base64Encoded: base64),
            let token = try? JSONDecoder().decode(FakeContinueToken.self, from: data), token.v == "meta.k8s.io/v1"
        else {
            throw FakeAPIError.badRequest(
                "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
        }
        self = token
    }
}

extension FakeAPIStore {
    /// The key a list sorts by, as etcd does: `namespace/name`, or `name` for cluster-scoped objects.
    static func sortKey(_ key: ObjectKey) -> String {
        key.namespace.isEmpty ? key.name : "\(key.namespace)/\(key.name)"
    }

    /// A `<Kind>List` sorted by namespace and name, a page of it when `limit` is set.
    func list(_ query: FakeListQuery) throws(FakeAPIError) -> JSONValue {
        let resource = query.filter.resource
        var version = self.resourceVersion
        var start: String?
        var objects = self.objects(of: resource)
        if let text = query.continueToken {
            let token = try FakeContinueToken(decoding: text)
            guard let past = self.objects(of: resource, at: token.rv) else {
                var error = FakeAPIError.continueTooOld
                error.metadata = [
                    "continue": .string(
                        FakeContinueToken(rv: self.resourceVersion, lastKey: String(token.start.dropLast())).encoded)
                ]
                throw error
            }
            objects = past
            version = token.rv
            start = token.start
        } else if let exact = query.exactVersion {
            guard let past = self.objects(of: resource, at: exact) else {
                throw FakeAPIError.tooOldResourceVersion(exact, oldest: self.historyStart + 1)
            }
            objects = past
            version = exact
        }
        var selected = objects.filter { key, object in query.filter.matches(object, key: key) }
            .map { (sortKey: Self.sortKey($0.key), object: $0.value) }
            .sorted { $0.sortKey < $1.sortKey }
        if let start { selected.removeAll { $0.sortKey < start } }
        var metadata: JSONObject = ["resourceVersion": .string(String(version))]
        if let limit = query.limit, limit > 0, selected.count > limit {
            let remaining = selected.count - limit
            selected = Array(selected.prefix(limit))
            metadata["continue"] = .string(
                FakeContinueToken(rv: version, lastKey: selected[selected.count - 1].sortKey).encoded)
            if query.filter.labels.requirements.isEmpty, query.filter.fields.requirements.isEmpty {
                metadata["remainingItemCount"] = .int(Int64(remaining))
            }
        }
        // Built-in lists leave kind and apiVersion out of their items; custom resources keep them.
        let items = selected.map { entry in
            resource.isCustom
                ? entry.object
                : FakeObject.setting(FakeObject.setting(entry.object, "kind", nil), "apiVersion", nil)
        }
        return .object([
            "kind": .string(resource.kind + "List"), "apiVersion": .string(resource.apiVersion),
            "metadata": .object(metadata), "items": .array(items),
        ])
    }
}
