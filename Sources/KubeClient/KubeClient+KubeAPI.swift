import AsyncHTTPClient
import KubeModel
import NIOCore

// MARK: - KubeAPI

extension KubeClient {
    /// GET one object; a missing one throws an error whose `isNotFound` is true.
    public func get<R: KubeResource>(_ type: R.Type, namespace: String?, name: String) async throws -> R {
        let request = Request.get(type, namespace: self.objectNamespace(type, namespace), name: name)
        return try Self.decode(R.self, from: try await self.send(request), request: request)
    }

    /// GET a collection (one page of it with `limit`); `namespace: nil` lists all namespaces.
    public func list<R: KubeResource>(
        _ type: R.Type, namespace: String?, options: ListOptions
    ) async throws
        -> meta.v1.List<R>
    {
        let request = Request.list(type, namespace: namespace, options: options)
        return try Self.decode(meta.v1.List<R>.self, from: try await self.send(request), request: request)
    }

    /// Opens a watch; `namespace: nil` watches all namespaces.
    ///
    /// Returns once the server accepted the watch; an error answer (403, 404, 410 ...) throws here. The stream
    /// is decoded as it arrives; a broken connection ends it with a `.transport` error. Its deadline is
    /// `timeoutSeconds` plus a minute, or an hour without `timeoutSeconds`.
    public func watch<R: KubeResource>(
        _ type: R.Type, namespace: String?, options: WatchOptions
    ) async throws
        -> WatchEvents<R>
    {
        let request = Request.watch(type, namespace: namespace, options: options)
        let deadline: Duration = options.timeoutSeconds.map { .seconds($0 + 60) } ?? .seconds(3600)
        let response = try await self.stream(request, timeout: deadline)
        return WatchEvents(chunks: WatchBody(body: response.body, request: request.description))
    }

    /// POST; the namespace is the object's, else the configuration's.
    public func create<R: KubeResource>(_ object: R) async throws -> R {
        let request = try Request.create(object, namespace: self.objectNamespace(R.self, object.metadata.namespace))
        return try Self.decode(R.self, from: try await self.send(request), request: request)
    }

    /// PUT; a stale `metadata.resourceVersion` throws an error whose `isConflict` is true.
    public func update<R: KubeResource>(_ object: R) async throws -> R {
        let request = try Request.update(object, namespace: self.objectNamespace(R.self, object.metadata.namespace))
        return try Self.decode(R.self, from: try await self.send(request), request: request)
    }

    /// PUT to the `status` subresource.
    public func updateStatus<R: KubeResource>(_ object: R) async throws -> R {
        let request = try Request.update(
            object, namespace: self.objectNamespace(R.self, object.metadata.namespace), subresource: "status")
        return try Self.decode(R.self, from: try await self.send(request), request: request)
    }

    /// PATCH with the content type of `patch`. Server-side apply without `options.fieldManager`, or `force`
    /// on another kind of patch, throws `.configuration` before anything is sent.
    public func patch<R: KubeResource>(
        _ type: R.Type, namespace: String?, name: String, patch: KubePatch, options: PatchOptions
    ) async throws -> R {
        let request = try Request.patch(
            type, namespace: self.objectNamespace(type, namespace), name: name, patch: patch, options: options)
        return try Self.decode(R.self, from: try await self.send(request), request: request)
    }

    /// DELETE; the answer (the object being finalized, or a `Status`) is not decoded.
    public func delete<R: KubeResource>(_ type: R.Type, namespace: String?, name: String) async throws {
        let request = Request.delete(type, namespace: self.objectNamespace(type, namespace), name: name)
        _ = try await self.send(request)
    }

    /// The namespace of a call that names one object: the given one, else the configuration's for a namespaced
    /// kind; nil for a cluster-scoped kind.
    func objectNamespace<R: KubeResource>(_ type: R.Type, _ namespace: String?) -> String? {
        guard R.isNamespaced else { return nil }
        if let namespace, !namespace.isEmpty { return namespace }
        return self.configuration.namespace
    }
}

// MARK: - Watch body

/// The body of a watch answer as byte chunks; a failure of the connection becomes a `.transport` error.
struct WatchBody: AsyncSequence {
    typealias Element = [UInt8]

    let body: HTTPClientResponse.Body
    let request: String

    func makeAsyncIterator() -> Iterator {
        Iterator(base: self.body.makeAsyncIterator(), request: self.request)
    }

    struct Iterator: AsyncIteratorProtocol {
        var base: HTTPClientResponse.Body.AsyncIterator
        let request: String

        mutating func next() async throws -> [UInt8]? {
            do {
                guard let buffer = try await self.base.next() else { return nil }
                return Array(buffer: buffer)
            } catch {
                if error is CancellationError || Task.isCancelled { throw CancellationError() }
                throw KubeClientError(
                    code: .transport, message: "the watch stream broke", request: self.request, cause: error)
            }
        }
    }
}
