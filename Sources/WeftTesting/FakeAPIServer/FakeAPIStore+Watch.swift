import KubeModel
import NIOCore
import Synchronization

/// Where a watch's events go: the connection's handler, on its event loop.
///
/// Every line is queued with `EventLoop.execute`, which runs tasks in order, and always from under the store's
/// lock, so a watch sees events in resourceVersion order, and a bookmark never overtakes an event it covers.
final class FakeWatchSink: Sendable {
    /// A consumer this far behind is dropped (it sees its connection close, and resumes or relists).
    static let maxPendingBytes = 16 << 20

    let id: Int
    private let eventLoop: any EventLoop
    private let handler: NIOLoopBound<FakeAPIServerHandler>
    private let pendingBytes = Atomic<Int>(0)

    init(id: Int, eventLoop: any EventLoop, handler: NIOLoopBound<FakeAPIServerHandler>) {
        self.id = id
        self.eventLoop = eventLoop
        self.handler = handler
    }

    /// Queues one line; false when the consumer is too far behind and the connection is being closed.
    func send(_ line: ByteBuffer) -> Bool {
        let size = line.readableBytes
        guard self.pendingBytes.add(size, ordering: .relaxed).newValue <= Self.maxPendingBytes else {
            self.abort()
            return false
        }
        let handler = self.handler
        let id = self.id
        self.eventLoop.execute {
            handler.value.writeWatchLine(line, watch: id) { [self] in
                self.pendingBytes.subtract(size, ordering: .relaxed)
            }
        }
        return true
    }

    /// Ends the stream cleanly after the lines queued so far.
    func finish() {
        let handler = self.handler
        let id = self.id
        self.eventLoop.execute { handler.value.finishWatch(id) }
    }

    /// Closes the connection mid-stream, after the lines queued so far.
    func abort() {
        let handler = self.handler
        let id = self.id
        self.eventLoop.execute { handler.value.abortWatch(id) }
    }
}

/// An open watch.
struct FakeWatcher: Sendable {
    var filter: FakeObjectFilter
    var bookmarks: Bool
    /// Events at or before this version are not sent (a watch that starts from a version ahead of now).
    var after: Int64
    var sink: FakeWatchSink
}

/// Where a watch starts.
enum FakeWatchStart: Sendable, Hashable {
    /// `ADDED` for every object first (resourceVersion absent or "0"); with `initialEventsEnd`, then a
    /// bookmark annotated `k8s.io/initial-events-end` (`sendInitialEvents=true`).
    case snapshot(initialEventsEnd: Bool)
    /// Replays the history after this version.
    case after(Int64)
}

extension FakeAPIStore {
    mutating func allocateWatchID() -> Int {
        defer { self.nextWatchID += 1 }
        return self.nextWatchID
    }

    /// Opens a watch and queues its first events. False when the version is older than the history: then an
    /// `ERROR` event (410 Expired) and the end of the stream are queued instead.
    mutating func startWatch(
        filter: FakeObjectFilter, start: FakeWatchStart, bookmarks: Bool, sink: FakeWatchSink
    )
        -> Bool
    {
        switch start {
        case .snapshot(let initialEventsEnd):
            let objects = self.objects(of: filter.resource)
                .filter { filter.matches($0.value, key: $0.key) }
                .sorted { Self.sortKey($0.key) < Self.sortKey($1.key) }
            for (_, object) in objects {
                _ = sink.send(FakeJSON.watchLine(type: "ADDED", object: object))
            }
            if initialEventsEnd, bookmarks {
                let bookmark = self.bookmark(filter.resource, annotations: ["k8s.io/initial-events-end": "true"])
                _ = sink.send(FakeJSON.watchLine(type: "BOOKMARK", object: bookmark))
            }
            self.watchers[sink.id] = FakeWatcher(
                filter: filter, bookmarks: bookmarks, after: self.resourceVersion, sink: sink)
        case .after(let version):
            guard version >= self.historyStart else {
                let error = FakeAPIError.tooOldResourceVersion(version, oldest: self.historyStart + 1)
                _ = sink.send(FakeJSON.watchLine(type: "ERROR", object: error.status))
                sink.finish()
                return false
            }
            for event in self.history where event.resourceVersion > version && event.resourceID == filter.resource.id {
                if let (type, object) = Self.translate(event, for: filter) {
                    _ = sink.send(FakeJSON.watchLine(type: type, object: object))
                }
            }
            self.watchers[sink.id] = FakeWatcher(
                filter: filter, bookmarks: bookmarks, after: max(version, self.resourceVersion), sink: sink)
        }
        return true
    }

    /// Sends a write to the watches that select it.
    mutating func broadcast(_ event: FakeHistoryEvent, resource: FakeAPIResource) {
        var lines: [String: ByteBuffer] = [:]
        for (id, watcher) in self.watchers
        where watcher.filter.resource.id == event.resourceID && event.resourceVersion > watcher.after {
            guard let (type, object) = Self.translate(event, for: watcher.filter) else { continue }
            let cacheKey = type + (object == event.object ? "" : "/previous")
            let line = lines[cacheKey] ?? FakeJSON.watchLine(type: type, object: object)
            lines[cacheKey] = line
            if !watcher.sink.send(line) { self.watchers.removeValue(forKey: id) }
        }
    }

    /// A `BOOKMARK` with the current resourceVersion, when the watch asked for them.
    mutating func sendBookmark(_ id: Int) {
        guard let watcher = self.watchers[id], watcher.bookmarks else { return }
        let line = FakeJSON.watchLine(
            type: "BOOKMARK", object: self.bookmark(watcher.filter.resource, annotations: nil))
        if !watcher.sink.send(line) { self.watchers.removeValue(forKey: id) }
    }

    /// Ends a watch cleanly (`timeoutSeconds`).
    mutating func finishWatch(_ id: Int) {
        self.watchers.removeValue(forKey: id)?.sink.finish()
    }

    /// Forgets a watch whose connection went away.
    mutating func dropWatch(_ id: Int) {
        self.watchers.removeValue(forKey: id)
    }

    /// Closes every watch connection mid-stream.
    mutating func cutWatches() {
        let watchers = self.watchers
        self.watchers.removeAll()
        for watcher in watchers.values { watcher.sink.abort() }
    }

    private func bookmark(_ resource: FakeAPIResource, annotations: JSONObject?) -> JSONValue {
        var metadata: JSONObject = ["resourceVersion": .string(String(self.resourceVersion))]
        if let annotations { metadata["annotations"] = .object(annotations) }
        return .object([
            "kind": .string(resource.kind), "apiVersion": .string(resource.apiVersion),
            "metadata": .object(metadata),
        ])
    }

    /// What a watch with selectors sees of a write, as the API server's watch cache decides: an object that
    /// starts to match is `ADDED`, one that stops matching is `DELETED` (its previous state, at the event's
    /// version); nil when the watch sees nothing.
    static func translate(_ event: FakeHistoryEvent, for filter: FakeObjectFilter) -> (String, JSONValue)? {
        let matchesNow = filter.matches(event.object, key: event.key)
        switch event.type {
        case .added:
            return matchesNow ? ("ADDED", event.object) : nil
        case .deleted:
            return matchesNow ? ("DELETED", event.object) : nil
        case .modified:
            let matchedBefore = event.previous.map { filter.matches($0, key: event.key) } ?? false
            switch (matchedBefore, matchesNow) {
            case (true, true): return ("MODIFIED", event.object)
            case (false, true): return ("ADDED", event.object)
            case (true, false):
                let previous = event.previous.map {
                    FakeObject.settingMeta($0, "resourceVersion", .string(String(event.resourceVersion)))
                }
                return previous.map { ("DELETED", $0) }
            case (false, false): return nil
            }
        }
    }
}
