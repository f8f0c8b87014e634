import Foundation
import KubeModel
import NIOCore

enum FakeWatchEventType: String, Sendable {
    case added = "ADDED"
    case modified = "MODIFIED"
    case deleted = "DELETED"
}

/// One write, kept for watches that resume and for consistent list pages.
struct FakeHistoryEvent: Sendable {
    var resourceVersion: Int64
    var resourceID: String
    var key: ObjectKey
    var type: FakeWatchEventType
    /// The object after the write; for a deletion, the last state with the deletion's resourceVersion.
    var object: JSONValue
    /// The object before the write; nil for a creation.
    var previous: JSONValue?
}

/// Everything `FakeAPIServer` holds: objects, the resourceVersion counter, the event history and the open
/// watches. Lives in a `Mutex`; every method runs under it, so a write and its watch events are atomic.
struct FakeAPIStore {
    /// How many events the history keeps; older resourceVersions answer 410.
    let historyWindow: Int
    /// The last resourceVersion handed out. Starts above 0, which means "any version" in a watch or list.
    private(set) var resourceVersion: Int64 = 1
    /// `resource.id` → `namespace/name` → object.
    private(set) var objects: [String: [ObjectKey: JSONValue]] = [:]
    private(set) var history = CircularBuffer<FakeHistoryEvent>()
    /// Every event after this version is in `history`; asking for anything older is 410.
    private(set) var historyStart: Int64 = 1
    var watchers: [Int: FakeWatcher] = [:]
    var nextWatchID = 1
    var requests: [FakeAPIServer.Request] = []
    var failures: [FakeAPIServer.FailureRule] = []
    /// Registered tokens: who they belong to and the audiences they were issued for.
    var tokenReviews: [String: (user: authentication.v1.UserInfo, audiences: [String])] = [:]

    /// Requests beyond this many drop the oldest record.
    static let maxRecordedRequests = 100_000

    init(historyWindow: Int) {
        self.historyWindow = max(1, historyWindow)
    }

    /// `now`, for creationTimestamp, deletionTimestamp and managedFields.
    var now: String { FakeObject.timestamp(Date()) }

    func object(_ resource: FakeAPIResource, _ key: ObjectKey) -> JSONValue? {
        self.objects[resource.id]?[key]
    }

    func objects(of resource: FakeAPIResource) -> [ObjectKey: JSONValue] {
        self.objects[resource.id] ?? [:]
    }

    // MARK: - Writes

    /// Stores a write under a new resourceVersion, records it in the history, and sends it to the watches.
    /// Returns the object as stored.
    @discardableResult
    mutating func commit(
        _ type: FakeWatchEventType, _ resource: FakeAPIResource, _ key: ObjectKey, object: JSONValue,
        previous: JSONValue?
    ) -> JSONValue {
        self.resourceVersion += 1
        let stored = FakeObject.settingMeta(object, "resourceVersion", .string(String(self.resourceVersion)))
        if type == .deleted {
            self.objects[resource.id]?.removeValue(forKey: key)
        } else {
            self.objects[resource.id, default: [:]][key] = stored
        }
        let event = FakeHistoryEvent(
            resourceVersion: self.resourceVersion, resourceID: resource.id, key: key, type: type, object: stored,
            previous: previous)
        self.history.append(event)
        while self.history.count > self.historyWindow, let dropped = self.history.popFirst() {
            self.historyStart = dropped.resourceVersion
        }
        self.broadcast(event, resource: resource)
        return stored
    }

    /// Forgets the history: every resourceVersion before now answers 410.
    mutating func expireHistory() {
        self.history.removeAll()
        self.historyStart = self.resourceVersion
    }

    /// The objects of `resource` as they were at `version`, rebuilt by undoing the history after it; nil when
    /// the history no longer reaches back that far.
    func objects(of resource: FakeAPIResource, at version: Int64) -> [ObjectKey: JSONValue]? {
        guard version >= self.historyStart else { return nil }
        var objects = self.objects(of: resource)
        for event in self.history.reversed() {
            guard event.resourceVersion > version else { break }
            guard event.resourceID == resource.id else { continue }
            objects[event.key] = event.previous
        }
        return objects
    }

    // MARK: - Direct access (seed)

    /// Stores an object as given, bypassing admission: status is kept, missing server fields are filled in,
    /// and an object that exists is replaced. Watches see `ADDED` or `MODIFIED`.
    @discardableResult
    mutating func seed(_ object: JSONValue) throws(FakeAPIError) -> JSONValue {
        guard object.objectValue != nil,
            let apiVersion = object["apiVersion"]?.stringValue, let kind = object["kind"]?.stringValue
        else { throw FakeAPIError.badRequest("a seeded object needs apiVersion and kind") }
        guard let resource = FakeAPIResource.find(apiVersion: apiVersion, kind: kind), !resource.isVirtual else {
            throw FakeAPIError.badRequest("FakeAPIServer does not serve \(kind) in \(apiVersion)")
        }
        guard let name = FakeObject.meta(object, "name") else {
            throw FakeAPIError.invalid(
                resource, name: "", field: "metadata.name", causeReason: "FieldValueRequired",
                causeMessage: "Required value: name or generateName is required")
        }
        var object = object
        let namespace = resource.namespaced ? FakeObject.meta(object, "namespace") ?? "default" : nil
        object = FakeObject.settingMeta(object, "namespace", namespace.map { .string($0) })
        let key = ObjectKey(namespace: namespace ?? "", name: name)
        let current = self.object(resource, key)
        if FakeObject.meta(object, "uid") == nil {
            let uid = current.flatMap { FakeObject.meta($0, "uid") } ?? UUID().uuidString.lowercased()
            object = FakeObject.settingMeta(object, "uid", .string(uid))
        }
        if FakeObject.meta(object, "creationTimestamp") == nil {
            let created = current.flatMap { FakeObject.meta($0, "creationTimestamp") } ?? self.now
            object = FakeObject.settingMeta(object, "creationTimestamp", .string(created))
        }
        if FakeObject.generation(object) == nil {
            var generation: Int64 = 1
            if let current {
                generation = FakeObject.generation(current) ?? 1
                if FakeObject.specPart(current) != FakeObject.specPart(object) { generation += 1 }
            }
            object = FakeObject.settingMeta(object, "generation", .int(generation))
        }
        return self.commit(current == nil ? .added : .modified, resource, key, object: object, previous: current)
    }

    /// Removes an object, bypassing finalizers; watches see `DELETED`. False when there was none.
    mutating func remove(_ resource: FakeAPIResource, _ key: ObjectKey) -> Bool {
        guard let current = self.object(resource, key) else { return false }
        self.commit(.deleted, resource, key, object: current, previous: current)
        return true
    }

    // MARK: - Requests and injected failures

    mutating func record(_ request: FakeAPIServer.Request) {
        self.requests.append(request)
        if self.requests.count > Self.maxRecordedRequests {
            self.requests.removeFirst(self.requests.count - Self.maxRecordedRequests)
        }
    }

    /// The injected failure this request meets, if any; counts it down.
    mutating func takeFailure(for request: FakeAPIServer.Request) -> FakeAPIError? {
        guard let index = self.failures.firstIndex(where: { $0.matches(request) }) else { return nil }
        let code = self.failures[index].status
        self.failures[index].remaining -= 1
        if self.failures[index].remaining <= 0 { self.failures.remove(at: index) }
        return FakeAPIError.injected(code: code)
    }
}
