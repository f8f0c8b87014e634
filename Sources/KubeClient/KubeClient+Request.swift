import Foundation
import KubeModel
import NIOHTTP1

extension KubeClient {
    /// One request to the API server, before it becomes HTTP, built by pure functions so that tests check
    /// paths, query strings, content types and bodies without a server.
    struct Request: Sendable, Hashable, CustomStringConvertible {
        enum Method: String, Sendable, Hashable {
            case get = "GET"
            case post = "POST"
            case put = "PUT"
            case patch = "PATCH"
            case delete = "DELETE"

            var http: HTTPMethod {
                switch self {
                case .get: .GET
                case .post: .POST
                case .put: .PUT
                case .patch: .PATCH
                case .delete: .DELETE
                }
            }
        }

        struct QueryItem: Sendable, Hashable {
            var name: String
            var value: String
        }

        /// The Kubernetes verb, a bounded metrics dimension: `get`, `list`, `watch`, `create`, `update`, `patch`,
        /// `delete`.
        var verb: String
        var method: Method
        /// The path below the server URL, e.g. `/api/v1/namespaces/shop/pods/web-1`.
        var path: String
        var query: [QueryItem] = []
        var contentType: String?
        var body: [UInt8]?

        /// `PATCH /apis/weft.dev/v1alpha1/namespaces/shop/virtualservices/web`: names the request in errors.
        var description: String { "\(self.method.rawValue) \(self.path)" }

        /// The path and the percent-encoded query string.
        var target: String {
            guard !self.query.isEmpty else { return self.path }
            let query = self.query.map { "\(Self.percentEncode($0.name))=\(Self.percentEncode($0.value))" }
            return self.path + "?" + query.joined(separator: "&")
        }

        /// Encodes every byte but the RFC 3986 unreserved characters, so selectors (`app in (a,b)`, `a!=b`) and
        /// continue tokens (base64 with `=`, `+`, `/`) survive intact.
        static func percentEncode(_ text: String) -> String {
            let hex = Array("0123456789ABCDEF".utf8)
            var bytes: [UInt8] = []
            bytes.reserveCapacity(text.utf8.count)
            for byte in text.utf8 {
                switch byte {
                case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                    UInt8(ascii: "~"):
                    bytes.append(byte)
                default:
                    bytes.append(UInt8(ascii: "%"))
                    bytes.append(hex[Int(byte >> 4)])
                    bytes.append(hex[Int(byte & 0x0f)])
                }
            }
            return String(decoding: bytes, as: UTF8.self)
        }
    }
}

// MARK: - Builders

extension KubeClient.Request {
    static func get<R: KubeResource>(_ type: R.Type, namespace: String?, name: String) -> KubeClient.Request {
        KubeClient.Request(verb: "get", method: .get, path: ResourcePath(type).path(namespace: namespace, name: name))
    }

    /// A list; with a `continue` token the resourceVersion is left out, as the server rejects both together.
    static func list<R: KubeResource>(_ type: R.Type, namespace: String?, options: ListOptions) -> KubeClient.Request {
        var request = KubeClient.Request(
            verb: "list", method: .get, path: ResourcePath(type).path(namespace: namespace))
        request.add("labelSelector", options.labelSelector)
        request.add("fieldSelector", options.fieldSelector)
        request.add("limit", options.limit.map(String.init))
        request.add("continue", options.continue)
        if options.continue?.isEmpty ?? true {
            request.add("resourceVersion", options.resourceVersion)
        }
        return request
    }

    static func watch<R: KubeResource>(_ type: R.Type, namespace: String?, options: WatchOptions) -> KubeClient.Request
    {
        var request = KubeClient.Request(
            verb: "watch", method: .get, path: ResourcePath(type).path(namespace: namespace))
        request.add("watch", "1")
        request.add("resourceVersion", options.resourceVersion)
        if options.allowWatchBookmarks { request.add("allowWatchBookmarks", "true") }
        request.add("timeoutSeconds", options.timeoutSeconds.map(String.init))
        request.add("labelSelector", options.labelSelector)
        request.add("fieldSelector", options.fieldSelector)
        return request
    }

    /// POST to the collection.
    static func create<R: KubeResource>(_ object: R, namespace: String?) throws -> KubeClient.Request {
        var request = KubeClient.Request(
            verb: "create", method: .post, path: ResourcePath(R.self).path(namespace: namespace))
        request.contentType = "application/json"
        request.body = try Self.objectBody(object)
        return request
    }

    /// PUT of the whole object, or of its `status` subresource.
    static func update<R: KubeResource>(
        _ object: R, namespace: String?, subresource: String? = nil
    ) throws
        -> KubeClient.Request
    {
        guard let name = object.metadata.name, !name.isEmpty else {
            throw KubeClientError(code: .configuration, message: "an update of a \(R.kind) needs metadata.name")
        }
        let path = ResourcePath(R.self).path(namespace: namespace, name: name, subresource: subresource)
        var request = KubeClient.Request(verb: "update", method: .put, path: path)
        request.contentType = "application/json"
        request.body = try Self.objectBody(object)
        return request
    }

    /// PATCH with the content type of the patch kind. Server-side apply needs a field manager, and only apply
    /// may force: both are checked here, before anything is sent.
    static func patch<R: KubeResource>(
        _ type: R.Type, namespace: String?, name: String, patch: KubePatch, options: PatchOptions
    ) throws -> KubeClient.Request {
        let path = ResourcePath(type).path(namespace: namespace, name: name, subresource: options.subresource)
        var request = KubeClient.Request(verb: "patch", method: .patch, path: path)
        request.contentType = patch.contentType
        let fieldManager = options.fieldManager.flatMap { $0.isEmpty ? nil : $0 }
        switch patch {
        case .merge(let value):
            request.body = try Self.encode(value)
        case .json(let operations):
            request.body = try Self.encode(operations)
        case .apply(let value):
            guard fieldManager != nil else {
                throw KubeClientError(
                    code: .configuration,
                    message: "server-side apply of \(R.kind) \(name) needs a fieldManager (PatchOptions.fieldManager)",
                    request: request.description)
            }
            request.body = try Self.encode(Self.withTypeMeta(value, R.self))
        }
        if options.force {
            guard case .apply = patch else {
                throw KubeClientError(
                    code: .configuration,
                    message: "force is only allowed for server-side apply, not for \(patch.contentType)",
                    request: request.description)
            }
        }
        request.add("fieldManager", fieldManager)
        if options.force { request.add("force", "true") }
        return request
    }

    static func delete<R: KubeResource>(_ type: R.Type, namespace: String?, name: String) -> KubeClient.Request {
        KubeClient.Request(
            verb: "delete", method: .delete, path: ResourcePath(type).path(namespace: namespace, name: name))
    }

    // MARK: Helpers

    mutating func add(_ name: String, _ value: String?) {
        guard let value, !value.isEmpty else { return }
        self.query.append(QueryItem(name: name, value: value))
    }

    /// The object as JSON, with `apiVersion` and `kind` filled in when the model left them out.
    static func objectBody<R: KubeResource>(_ object: R) throws -> [UInt8] {
        let value: JSONValue
        do {
            value = try JSONValue.from(encodable: object)
        } catch {
            throw KubeClientError(
                code: .configuration, message: "cannot encode \(R.kind) \(object.key) as JSON", cause: error)
        }
        return try Self.encode(Self.withTypeMeta(value, R.self))
    }

    /// Sets `apiVersion` and `kind` of an object when absent: the server needs them for apply and checks them
    /// on create and update.
    static func withTypeMeta<R: KubeResource>(_ value: JSONValue, _ type: R.Type) -> JSONValue {
        guard case .object(var members) = value else { return value }
        if members["apiVersion"] == nil || members["apiVersion"] == .null {
            members["apiVersion"] = .string(R.apiVersion)
        }
        if members["kind"] == nil || members["kind"] == .null { members["kind"] = .string(R.kind) }
        return .object(members)
    }

    static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            return Array(try encoder.encode(value))
        } catch {
            throw KubeClientError(code: .configuration, message: "cannot encode a request body as JSON", cause: error)
        }
    }
}
