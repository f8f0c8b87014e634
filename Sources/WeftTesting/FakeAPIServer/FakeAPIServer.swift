public import KubeModel
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// An in-process Kubernetes API server over real HTTP/1.1 on 127.0.0.1, with the semantics the controller relies
/// on: one increasing resourceVersion, 409 on a stale update, generation bumps on spec changes, the status
/// subresource, merge / JSON / apply patches, paginated lists with continue tokens, and watches that replay from a
/// version, send bookmarks, and answer 410 once the version left the history window.
///
/// ```swift
/// let server = try await FakeAPIServer.start()
/// try server.seed(pod)
/// // point the client at server.baseURL, run the code under test, then:
/// #expect(server.count(method: "PUT", pathContains: "/virtualservices/") == 0)
/// try await server.shutdown()
/// ```
///
/// Fault injection: ``failNext(_:status:method:pathContains:)``, ``cutWatches()`` and ``expireHistory()``.
/// Everything is recorded in ``requests``.
public final class FakeAPIServer: Sendable {
    /// One request as the server received it.
    public struct Request: Sendable, Hashable, CustomStringConvertible {
        public var method: String
        /// The path without the query: `/apis/weft.dev/v1alpha1/namespaces/shop/virtualservices/web`.
        public var path: String
        /// The decoded query parameters (the first value of a repeated one).
        public var query: [String: String]
        public var contentType: String?
        public var body: String

        public init(method: String, path: String, query: [String: String], contentType: String?, body: String) {
            self.method = method
            self.path = path
            self.query = query
            self.contentType = contentType
            self.body = body
        }

        /// POST, PUT, PATCH or DELETE.
        public var isWrite: Bool { ["POST", "PUT", "PATCH", "DELETE"].contains(self.method) }

        public var description: String {
            let query = self.query.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "&")
            return "\(self.method) \(self.path)\(query.isEmpty ? "" : "?" + query)"
        }
    }

    /// A pending injected failure.
    struct FailureRule: Sendable {
        var remaining: Int
        var status: Int
        var method: String?
        var pathContains: String?
        var bodyContains: String?

        func matches(_ request: Request) -> Bool {
            (self.method.map { $0.uppercased() == request.method } ?? true)
                && (self.pathContains.map { request.path.contains($0) } ?? true)
                && (self.bodyContains.map { request.body.contains($0) } ?? true)
        }
    }

    let core: FakeAPIServerCore
    private let group: MultiThreadedEventLoopGroup
    private let channel: any Channel
    private let isShutDown = Atomic<Bool>(false)

    /// The port the server listens on, on 127.0.0.1.
    public let port: Int

    /// `http://127.0.0.1:PORT`.
    public var baseURL: String { "http://127.0.0.1:\(self.port)" }

    private init(core: FakeAPIServerCore, group: MultiThreadedEventLoopGroup, channel: any Channel, port: Int) {
        self.core = core
        self.group = group
        self.channel = channel
        self.port = port
    }

    /// Starts a server on a random port of 127.0.0.1.
    /// - Parameters:
    ///   - historyWindow: How many writes the event history keeps; watches and continue tokens from before that
    ///     answer 410 Expired.
    ///   - bookmarkInterval: How often watches with `allowWatchBookmarks=true` get a BOOKMARK.
    public static func start(
        historyWindow: Int = 1000, bookmarkInterval: Duration = .seconds(1)
    ) async throws
        -> FakeAPIServer
    {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let core = FakeAPIServerCore(historyWindow: historyWindow, bookmarkInterval: bookmarkInterval)
        do {
            let channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                        try channel.pipeline.syncOperations.addHandler(FakeAPIServerHandler(core: core))
                    }
                }
                .bind(host: "127.0.0.1", port: 0)
                .get()
            guard let port = channel.localAddress?.port else {
                try? await channel.close()
                throw FakeAPIError.internalError("the server socket has no port")
            }
            return FakeAPIServer(core: core, group: group, channel: channel, port: port)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    /// Stops listening, closes every connection and stops the server's event loop. Calling it again does nothing.
    public func shutdown() async throws {
        guard !self.isShutDown.exchange(true, ordering: .acquiringAndReleasing) else { return }
        self.core.store.withLock { $0.watchers.removeAll() }
        try? await self.channel.close()
        try await self.group.shutdownGracefully()
    }

    deinit {
        // A test that forgot shutdown() must not leave a thread and a socket behind.
        if !self.isShutDown.load(ordering: .acquiring) {
            self.group.shutdownGracefully { _ in }
        }
    }

    // MARK: - The store, bypassing HTTP

    /// The current resourceVersion: what a list would answer now.
    public var resourceVersion: String {
        self.core.store.withLock { String($0.resourceVersion) }
    }

    /// Stores an object as given (status included), filling in uid, creationTimestamp, generation and, for
    /// namespaced kinds without one, the namespace `default`. An object that exists is replaced. Watches see it.
    /// Sends the service proxy's requests for Service `namespace/service`
    /// (`/api/v1/namespaces/NS/services/[SCHEME:]NAME[:PORT]/proxy/...`) to 127.0.0.1:`port`, as the real server sends
    /// them to a ready endpoint; nil removes the route (the answer is then 503 "no endpoints available").
    public func routeServiceProxy(namespace: String, service: String, to port: Int?) {
        self.core.serviceProxies.withLock { $0["\(namespace)/\(service)"] = port }
    }

    public func seed(_ object: JSONValue) throws {
        _ = try self.core.store.withLock { store throws(FakeAPIError) in try store.seed(object) }
    }

    /// Stores a typed object; see ``seed(_:)-(JSONValue)``.
    public func seed<R: KubeResource>(_ object: R) throws {
        var json = try JSONValue.from(encodable: object)
        if json["apiVersion"]?.stringValue == nil {
            json = FakeObject.setting(json, "apiVersion", .string(R.apiVersion))
        }
        if json["kind"]?.stringValue == nil { json = FakeObject.setting(json, "kind", .string(R.kind)) }
        try self.seed(json)
    }

    /// The stored object, as the server would answer a GET; nil when there is none.
    public func object(
        group: String, version: String, plural: String, namespace: String?, name: String
    )
        -> JSONValue?
    {
        guard let resource = FakeAPIResource.find(group: group, version: version, plural: plural) else { return nil }
        let key = ObjectKey(namespace: resource.namespaced ? namespace ?? "" : "", name: name)
        return self.core.store.withLock { $0.object(resource, key) }
    }

    /// The stored object decoded as `R`; nil when there is none (or it does not decode).
    public func get<R: KubeResource>(_ type: R.Type, namespace: String?, name: String) -> R? {
        let path = ResourcePathParts(R.self)
        guard
            let json = self.object(
                group: path.group, version: path.version, plural: R.plural, namespace: namespace, name: name)
        else { return nil }
        return try? JSONValueDecoder().decode(R.self, from: json)
    }

    /// Every stored object of a kind (in one namespace, or all), sorted by namespace and name.
    public func list<R: KubeResource>(_ type: R.Type, namespace: String? = nil) -> [R] {
        let path = ResourcePathParts(R.self)
        guard let resource = FakeAPIResource.find(group: path.group, version: path.version, plural: R.plural) else {
            return []
        }
        let objects = self.core.store.withLock { $0.objects(of: resource) }
        return objects.filter { namespace == nil || $0.key.namespace == namespace }
            .sorted { FakeAPIStore.sortKey($0.key) < FakeAPIStore.sortKey($1.key) }
            .compactMap { try? JSONValueDecoder().decode(R.self, from: $0.value) }
    }

    /// Deletes an object at once (finalizers notwithstanding); watches see DELETED. False when there was none.
    @discardableResult
    public func remove(group: String, version: String, plural: String, namespace: String?, name: String) -> Bool {
        guard let resource = FakeAPIResource.find(group: group, version: version, plural: plural) else { return false }
        let key = ObjectKey(namespace: resource.namespaced ? namespace ?? "" : "", name: name)
        return self.core.store.withLock { $0.remove(resource, key) }
    }

    // MARK: - TokenReview

    /// The audience the API server's own tokens carry; a TokenReview without `spec.audiences` is checked against it.
    public static let apiServerAudience = "https://kubernetes.default.svc.cluster.local"

    /// A TokenReview of `token` answers authenticated, as this user, when the review's `spec.audiences` (or, when
    /// absent, the API server's audience) share one with `audiences`; `status.audiences` is then that
    /// intersection, as the real API server answers. Otherwise, and for unknown tokens, it answers
    /// `authenticated: false` with an `error`. An empty `spec.token` is a 400, as on a real API server.
    public func setTokenReview(
        token: String, username: String, uid: String? = nil, groups: [String] = [],
        audiences: [String] = [FakeAPIServer.apiServerAudience]
    ) {
        let user = authentication.v1.UserInfo(username: username, uid: uid, groups: groups.isEmpty ? nil : groups)
        self.core.store.withLock { $0.tokenReviews[token] = (user, audiences) }
    }

    public func removeTokenReview(token: String) {
        self.core.store.withLock { $0.tokenReviews[token] = nil }
    }

    // MARK: - Fault injection

    /// The next `count` requests that match (by method, by a substring of the path, and by a substring of the
    /// body) fail with a `Status` of this code, before anything else happens. Watches included: they get the error
    /// instead of a stream.
    public func failNext(
        _ count: Int, status: Int = 500, method: String? = nil, pathContains: String? = nil,
        bodyContains: String? = nil
    ) {
        guard count > 0 else { return }
        let rule = FailureRule(
            remaining: count, status: status, method: method, pathContains: pathContains, bodyContains: bodyContains)
        self.core.store.withLock { $0.failures.append(rule) }
    }

    /// Closes every open watch connection mid-stream, without ending the chunked response: clients see a broken
    /// connection and must resume.
    public func cutWatches() {
        self.core.store.withLock { $0.cutWatches() }
    }

    /// Forgets the event history: watches from any earlier resourceVersion get an ERROR event (410 Expired), and
    /// continue tokens from earlier lists answer 410.
    public func expireHistory() {
        self.core.store.withLock { $0.expireHistory() }
    }

    // MARK: - Introspection

    /// Every request received, oldest first (the last 100 000).
    public var requests: [Request] {
        self.core.store.withLock { $0.requests }
    }

    /// How many recorded requests match a method (any when nil) and contain a substring in their path.
    public func count(method: String? = nil, pathContains: String? = nil) -> Int {
        self.core.store.withLock { store in
            store.requests.count { request in
                (method.map { $0.uppercased() == request.method } ?? true)
                    && (pathContains.map { request.path.contains($0) } ?? true)
            }
        }
    }

    /// How many POST, PUT, PATCH and DELETE requests were received, optionally only those whose path contains a
    /// substring: a reconcile with nothing to change makes none.
    public func writeCount(pathContains: String? = nil) -> Int {
        self.core.store.withLock { store in
            store.requests.count { $0.isWrite && (pathContains.map($0.path.contains) ?? true) }
        }
    }

    public func resetRequests() {
        self.core.store.withLock { $0.requests.removeAll() }
    }

    /// How many watches are streaming now.
    public var openWatches: Int {
        self.core.store.withLock { $0.watchers.count }
    }
}

/// `group` and `version` of a kind's apiVersion.
private struct ResourcePathParts {
    var group: String
    var version: String

    init<R: KubeResource>(_ type: R.Type) {
        let parts = R.apiVersion.split(separator: "/", maxSplits: 1).map(String.init)
        self.group = parts.count == 2 ? parts[0] : ""
        self.version = parts.last ?? R.apiVersion
    }
}

extension FakeAPIError: CustomStringConvertible {
    var description: String { "\(self.code) \(self.reason ?? ""): \(self.message)" }
}
