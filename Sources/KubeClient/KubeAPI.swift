public import KubeModel

/// The Kubernetes API as the controller uses it: typed requests with the real semantics (resourceVersion,
/// the status subresource, 409 on a stale update, watches that resume, 410 Gone when a version expired).
///
/// `KubeClient` implements it over HTTP; tests run it against `FakeAPIServer` over HTTP too, so the wire
/// format is exercised, never mocked.
public protocol KubeAPI: Sendable {
    func get<R: KubeResource>(_ type: R.Type, namespace: String?, name: String) async throws -> R
    func list<R: KubeResource>(
        _ type: R.Type, namespace: String?, options: ListOptions
    ) async throws
        -> meta.v1.List<R>
    /// Opens a watch. Events are decoded as the chunks arrive; the sequence ends when the server closes the
    /// stream (the caller resumes from the last resourceVersion it saw) and throws on a broken connection.
    /// An expired resourceVersion arrives as an `ERROR` event whose object is a `Status` with code 410.
    func watch<R: KubeResource>(
        _ type: R.Type, namespace: String?, options: WatchOptions
    ) async throws
        -> WatchEvents<R>
    func create<R: KubeResource>(_ object: R) async throws -> R
    /// PUT: fails with 409 Conflict when `metadata.resourceVersion` is stale.
    func update<R: KubeResource>(_ object: R) async throws -> R
    /// PUT to the status subresource: only `status` changes.
    func updateStatus<R: KubeResource>(_ object: R) async throws -> R
    func patch<R: KubeResource>(
        _ type: R.Type, namespace: String?, name: String, patch: KubePatch,
        options: PatchOptions
    ) async throws -> R
    func delete<R: KubeResource>(_ type: R.Type, namespace: String?, name: String) async throws
    /// The same API with requests that run to their end even when the calling task is cancelled, each within
    /// `timeout`: for the last writes of a stopping component (client-go releases its Lease "with a fresh
    /// context"). Watches are not shielded.
    func ignoringCancellation(timeout: Duration) -> any KubeAPI
}

/// Query options of a list.
public struct ListOptions: Sendable, Hashable {
    public var labelSelector: String?
    public var fieldSelector: String?
    /// Page size; the answer's `metadata.continue` fetches the next page.
    public var limit: Int?
    public var `continue`: String?
    /// `"0"` lets the server answer from its cache; nil asks for the latest (a consistent read).
    public var resourceVersion: String?

    public init(
        labelSelector: String? = nil, fieldSelector: String? = nil, limit: Int? = nil,
        continue: String? = nil, resourceVersion: String? = nil
    ) {
        self.labelSelector = labelSelector
        self.fieldSelector = fieldSelector
        self.limit = limit
        self.continue = `continue`
        self.resourceVersion = resourceVersion
    }
}

/// Query options of a watch.
public struct WatchOptions: Sendable, Hashable {
    /// Start after this version (from a list's `metadata.resourceVersion` or the last event seen).
    public var resourceVersion: String?
    public var allowWatchBookmarks: Bool
    /// The server ends the stream after this long; the caller resumes.
    public var timeoutSeconds: Int?
    public var labelSelector: String?
    public var fieldSelector: String?

    public init(
        resourceVersion: String? = nil, allowWatchBookmarks: Bool = true, timeoutSeconds: Int? = nil,
        labelSelector: String? = nil, fieldSelector: String? = nil
    ) {
        self.resourceVersion = resourceVersion
        self.allowWatchBookmarks = allowWatchBookmarks
        self.timeoutSeconds = timeoutSeconds
        self.labelSelector = labelSelector
        self.fieldSelector = fieldSelector
    }
}

/// The kinds of PATCH the API server accepts, each with its content type.
public enum KubePatch: Sendable, Hashable {
    /// RFC 7386, `application/merge-patch+json`.
    case merge(JSONValue)
    /// RFC 6902, `application/json-patch+json`.
    case json([JSONPatchOperation])
    /// Server-side apply, `application/apply-patch+yaml` (JSON is YAML); needs a field manager.
    case apply(JSONValue)

    public var contentType: String {
        switch self {
        case .merge: "application/merge-patch+json"
        case .json: "application/json-patch+json"
        case .apply: "application/apply-patch+yaml"
        }
    }
}

/// One RFC 6902 operation.
public struct JSONPatchOperation: Codable, Sendable, Hashable {
    /// `add`, `remove`, `replace`, `move`, `copy` or `test`.
    public var op: String
    /// A JSON pointer, e.g. `/spec/containers/-`.
    public var path: String
    public var value: JSONValue?
    public var from: String?

    public init(op: String, path: String, value: JSONValue? = nil, from: String? = nil) {
        self.op = op
        self.path = path
        self.value = value
        self.from = from
    }
}

public struct PatchOptions: Sendable, Hashable {
    /// `status` to patch the status subresource.
    public var subresource: String?
    /// Required by server-side apply; recorded in managedFields for every write.
    public var fieldManager: String?
    /// Server-side apply: take ownership of fields other managers hold.
    public var force: Bool

    public init(subresource: String? = nil, fieldManager: String? = nil, force: Bool = false) {
        self.subresource = subresource
        self.fieldManager = fieldManager
        self.force = force
    }
}

/// Where a kind of resource lives in the REST API.
public struct ResourcePath: Sendable, Hashable {
    public var group: String
    public var version: String
    public var plural: String
    public var namespaced: Bool

    public init<R: KubeResource>(_ type: R.Type) {
        let apiVersion = R.apiVersion
        if let slash = apiVersion.firstIndex(of: "/") {
            self.group = String(apiVersion[..<slash])
            self.version = String(apiVersion[apiVersion.index(after: slash)...])
        } else {
            self.group = ""
            self.version = apiVersion
        }
        self.plural = R.plural
        self.namespaced = R.isNamespaced
    }

    /// `/api/v1/namespaces/shop/pods/web-1/status`, `/apis/weft.dev/v1alpha1/virtualservices` (all namespaces).
    public func path(namespace: String?, name: String? = nil, subresource: String? = nil) -> String {
        var path = self.group.isEmpty ? "/api/\(self.version)" : "/apis/\(self.group)/\(self.version)"
        if self.namespaced, let namespace, !namespace.isEmpty { path += "/namespaces/\(namespace)" }
        path += "/\(self.plural)"
        if let name { path += "/\(name)" }
        if let subresource { path += "/\(subresource)" }
        return path
    }
}
