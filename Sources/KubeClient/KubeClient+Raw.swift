import KubeModel

extension KubeClient {
    /// GET any path of the API server and return the body of its 2xx answer, as `kubectl get --raw` does:
    /// `/version`, the objects of kinds without a model here (CustomResourceDefinitions, RBAC), or a Service's
    /// proxy subresource. Any other answer throws its API error.
    ///
    /// - Parameter path: Starts with `/`; the query, if any, goes in `query` (it is percent-encoded here).
    public func getRaw(_ path: String, query: [(name: String, value: String)] = []) async throws -> [UInt8] {
        var request = Request(verb: "get", method: .get, path: path)
        for item in query { request.add(item.name, item.value) }
        return try await self.send(request)
    }

    /// Every object of a kind, following `continue` tokens page by page (`pageSize` objects each).
    public func listAll<R: KubeResource>(
        _ type: R.Type, namespace: String? = nil, labelSelector: String? = nil, pageSize: Int = 500
    ) async throws -> [R] {
        var items: [R] = []
        var next: String?
        repeat {
            let page = try await self.list(
                type, namespace: namespace,
                options: ListOptions(labelSelector: labelSelector, limit: pageSize, continue: next))
            items += page.items
            next = page.metadata.continue.flatMap { $0.isEmpty ? nil : $0 }
        } while next != nil
        return items
    }
}
