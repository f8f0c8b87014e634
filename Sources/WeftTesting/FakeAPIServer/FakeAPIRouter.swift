import Foundation
import KubeModel

/// What the handler sends back.
enum FakeAPIResponse: Sendable {
    case json(status: Int, body: JSONValue)
    case watch(FakeWatchRequest)

    static func error(_ error: FakeAPIError) -> FakeAPIResponse {
        .json(status: error.code, body: error.status)
    }
}

/// A watch the router accepted; the handler opens the stream and the store fills it.
struct FakeWatchRequest: Sendable {
    var filter: FakeObjectFilter
    var start: FakeWatchStart
    var bookmarks: Bool
    var timeoutSeconds: Int64?
}

/// Routes one request: the REST verbs on the served resources, with the API server's answers.
extension FakeAPIStore {
    /// What `GET /version` answers (the fields of the real server's `version.Info`).
    static let version: JSONValue = .object([
        "major": .string("1"), "minor": .string("34"), "gitVersion": .string("v1.34.0-weft-fake"),
        "gitCommit": .string("0000000000000000000000000000000000000000"), "gitTreeState": .string("clean"),
        "buildDate": .string("2026-01-01T00:00:00Z"), "goVersion": .string("go1.24.0"), "compiler": .string("gc"),
        "platform": .string("linux/amd64"),
    ])

    /// Records the request, meets an injected failure if one matches, and otherwise serves it.
    mutating func handle(_ request: FakeAPIServer.Request) -> FakeAPIResponse {
        self.record(request)
        if let failure = self.takeFailure(for: request) { return .error(failure) }
        do throws(FakeAPIError) {
            return try self.route(request)
        } catch {
            return .error(error)
        }
    }

    private mutating func route(_ request: FakeAPIServer.Request) throws(FakeAPIError) -> FakeAPIResponse {
        if request.path == "/version" {
            guard request.method == "GET" else { throw FakeAPIError.methodNotAllowed }
            return .json(status: 200, body: Self.version)
        }
        guard let path = FakeAPIPath(request.path) else { throw FakeAPIError.pathNotFound }
        let resource = path.resource
        let query = request.query
        if resource.isVirtual {
            guard request.method == "POST", path.name == nil else { throw FakeAPIError.methodNotAllowed }
            return .json(status: 201, body: try self.tokenReview(try Self.jsonBody(request, resource)))
        }
        let fieldManager = query["fieldManager"].flatMap { $0.isEmpty ? nil : $0 }
        let status = path.subresource == "status"
        switch (request.method, path.name) {
        case ("GET", nil):
            let filter = try Self.filter(path, query)
            if Self.bool(query["watch"]) { return .watch(try Self.watchRequest(filter, query)) }
            return .json(status: 200, body: try self.list(try Self.listQuery(filter, query)))
        case ("GET", let name?):
            guard let object = self.object(resource, Self.key(path, name)) else {
                throw FakeAPIError.notFound(resource, name: name)
            }
            return .json(status: 200, body: object)
        case ("POST", nil):
            guard !resource.namespaced || path.namespace != nil else { throw FakeAPIError.methodNotAllowed }
            let body = try Self.jsonBody(request, resource)
            let created = try self.create(resource, namespace: path.namespace, body: body, fieldManager: fieldManager)
            return .json(status: 201, body: created)
        case ("PUT", let name?):
            let body = try Self.jsonBody(request, resource)
            let updated = try self.update(
                resource, Self.key(path, name), body: body, status: status, fieldManager: fieldManager)
            return .json(status: 200, body: updated)
        case ("PATCH", let name?):
            let contentType = Self.mediaType(request.contentType)
            let builtInTypes = resource.isCustom ? [] : ["application/strategic-merge-patch+json"]
            guard let type = FakePatchType(contentType: contentType), type != .strategic || !resource.isCustom else {
                throw FakeAPIError.unsupportedMediaType(
                    contentType,
                    accepted: ["application/json-patch+json", "application/merge-patch+json"] + builtInTypes
                        + ["application/apply-patch+yaml"])
            }
            if type == .apply, fieldManager == nil {
                throw FakeAPIError.invalid(
                    kind: "PatchOptions", group: "meta.k8s.io", name: "", field: "fieldManager",
                    causeReason: "FieldValueRequired", causeMessage: "Required value: is required for apply patch")
            }
            if type != .apply, query["force"] != nil {
                throw FakeAPIError.invalid(
                    kind: "PatchOptions", group: "meta.k8s.io", name: "", field: "force",
                    causeReason: "FieldValueForbidden",
                    causeMessage: "Forbidden: may not be specified for non-apply patch")
            }
            guard let body = FakeJSON.parse(request.body) else {
                throw FakeAPIError.badRequest(
                    type == .apply
                        ? "error decoding YAML: the body is not JSON (FakeAPIServer reads apply patches as JSON)"
                        : "the body of the request is not valid JSON")
            }
            let (object, created) = try self.patch(
                resource, Self.key(path, name), type: type, body: body, status: status, fieldManager: fieldManager)
            return .json(status: created ? 201 : 200, body: object)
        case ("DELETE", let name?):
            let options = request.body.isEmpty ? nil : FakeJSON.parse(request.body)
            return .json(status: 200, body: try self.delete(resource, Self.key(path, name), options: options))
        default:
            throw FakeAPIError.methodNotAllowed
        }
    }

    // MARK: - TokenReview

    private func tokenReview(_ body: JSONValue) throws(FakeAPIError) -> JSONValue {
        // Like the API server's decoder: a missing apiVersion or kind defaults to the endpoint's, a wrong one is
        // refused.
        if let apiVersion = body["apiVersion"]?.stringValue, apiVersion != "authentication.k8s.io/v1" {
            throw FakeAPIError.badRequest(
                "the API version in the data (\(apiVersion)) does not match the expected "
                    + "API version (authentication.k8s.io/v1)")
        }
        if let kind = body["kind"]?.stringValue, kind != "TokenReview" {
            throw FakeAPIError.badRequest(
                "the kind in the data (\(kind)) does not match the expected kind (TokenReview)")
        }
        let spec = body["spec"] ?? .object([:])
        guard let token = spec["token"]?.stringValue, !token.isEmpty else {
            throw FakeAPIError.badRequest("token is required for TokenReview in authentication")
        }
        let wanted =
            spec["audiences"]?.arrayValue?.compactMap(\.stringValue).nonEmpty ?? [FakeAPIServer.apiServerAudience]
        var status: JSONObject
        if let (user, audiences) = self.tokenReviews[token], let userJSON = try? JSONValue.from(encodable: user) {
            let shared = wanted.filter(audiences.contains)
            if shared.isEmpty {
                status = [
                    "authenticated": false, "user": .object([:]),
                    "error": .string(
                        "[invalid bearer token, token audiences \(audiences) is invalid for the target audiences "
                            + "\(wanted)]"),
                ]
            } else {
                status = ["authenticated": true, "user": userJSON, "audiences": .array(shared.map { .string($0) })]
            }
        } else {
            status = ["authenticated": false, "user": .object([:]), "error": "invalid bearer token"]
        }
        return .object([
            "kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
            "metadata": .object(["creationTimestamp": .null]), "spec": spec, "status": .object(status),
        ])
    }

    // MARK: - Query parsing

    private static func key(_ path: FakeAPIPath, _ name: String) -> ObjectKey {
        ObjectKey(namespace: path.resource.namespaced ? path.namespace ?? "" : "", name: name)
    }

    /// Go's `strconv.ParseBool`, as the API server reads `watch` and `allowWatchBookmarks`.
    private static func bool(_ text: String?) -> Bool {
        ["1", "t", "T", "true", "TRUE", "True"].contains(text ?? "")
    }

    /// `application/json; charset=utf-8` → `application/json`.
    private static func mediaType(_ contentType: String?) -> String {
        let type = contentType?.split(separator: ";").first.map(String.init) ?? ""
        return type.trimmingCharacters(in: .whitespaces).lowercased()
    }

    private static func jsonBody(
        _ request: FakeAPIServer.Request, _ resource: FakeAPIResource
    ) throws(FakeAPIError)
        -> JSONValue
    {
        let type = self.mediaType(request.contentType)
        guard type.isEmpty || type == "application/json" || type == "*/*" else {
            throw FakeAPIError.unsupportedMediaType(type, accepted: ["application/json"])
        }
        guard let body = FakeJSON.parse(request.body) else {
            throw FakeAPIError.badRequest(
                "the object provided is unrecognized (must be of type \(resource.kind)): couldn't get version/kind; "
                    + "json parse error: the body is not valid JSON")
        }
        return body
    }

    private static func filter(
        _ path: FakeAPIPath, _ query: [String: String]
    ) throws(FakeAPIError)
        -> FakeObjectFilter
    {
        var filter = FakeObjectFilter(resource: path.resource, namespace: path.namespace)
        if let text = query["labelSelector"] { filter.labels = try FakeLabelSelector(parsing: text) }
        if let text = query["fieldSelector"] {
            filter.fields = try FakeFieldSelector(parsing: text, resource: path.resource)
        }
        return filter
    }

    private static func version(_ text: String) throws(FakeAPIError) -> Int64 {
        guard let version = Int64(text), version >= 0 else {
            throw FakeAPIError.badRequest("resourceVersion: Invalid value: \"\(text)\": must be an integer")
        }
        return version
    }

    private static func listQuery(
        _ filter: FakeObjectFilter, _ query: [String: String]
    ) throws(FakeAPIError)
        -> FakeListQuery
    {
        var list = FakeListQuery(filter: filter)
        if let text = query["limit"], !text.isEmpty {
            guard let limit = Int(text), limit >= 0 else {
                throw FakeAPIError.badRequest("limit: Invalid value: \"\(text)\": must be a non-negative integer")
            }
            list.limit = limit
        }
        let version = query["resourceVersion"] ?? ""
        if let token = query["continue"], !token.isEmpty {
            if !version.isEmpty {
                throw FakeAPIError.badRequest("specifying resource version is not allowed when using continue")
            }
            list.continueToken = token
        }
        if !version.isEmpty {
            let number = try self.version(version)
            if query["resourceVersionMatch"] == "Exact" { list.exactVersion = number }
        }
        return list
    }

    private static func watchRequest(
        _ filter: FakeObjectFilter, _ query: [String: String]
    ) throws(FakeAPIError)
        -> FakeWatchRequest
    {
        let bookmarks = self.bool(query["allowWatchBookmarks"])
        let version = query["resourceVersion"] ?? ""
        let start: FakeWatchStart
        if self.bool(query["sendInitialEvents"]) {
            start = .snapshot(initialEventsEnd: true)
        } else if version.isEmpty || version == "0" {
            start = .snapshot(initialEventsEnd: false)
        } else {
            start = .after(try self.version(version))
        }
        var timeout: Int64?
        if let text = query["timeoutSeconds"], !text.isEmpty {
            guard let seconds = Int64(text), seconds >= 0 else {
                throw FakeAPIError.badRequest("timeoutSeconds: Invalid value: \"\(text)\": must be an integer")
            }
            timeout = seconds
        }
        return FakeWatchRequest(filter: filter, start: start, bookmarks: bookmarks, timeoutSeconds: timeout)
    }
}

extension Array {
    /// Nil when empty.
    fileprivate var nonEmpty: Self? { self.isEmpty ? nil : self }
}
