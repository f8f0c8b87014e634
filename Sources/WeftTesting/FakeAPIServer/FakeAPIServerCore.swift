import KubeModel
import Synchronization

/// The state every connection of a `FakeAPIServer` shares: the store, under one lock.
final class FakeAPIServerCore: Sendable {
    let store: Mutex<FakeAPIStore>
    let bookmarkInterval: Duration
    /// Where the service proxy sends each Service's requests ("namespace/name" to a port on 127.0.0.1).
    let serviceProxies = Mutex<[String: Int]>([:])

    init(historyWindow: Int, bookmarkInterval: Duration) {
        self.store = Mutex(FakeAPIStore(historyWindow: historyWindow))
        self.bookmarkInterval = bookmarkInterval
    }

    func handle(_ request: FakeAPIServer.Request) -> FakeAPIResponse {
        self.store.withLock { $0.handle(request) }
    }

    func allocateWatchID() -> Int {
        self.store.withLock { $0.allocateWatchID() }
    }

    /// Opens a watch; false when its resourceVersion expired (the sink got the ERROR event and the end).
    func startWatch(_ request: FakeWatchRequest, sink: FakeWatchSink) -> Bool {
        self.store.withLock { store in
            store.startWatch(filter: request.filter, start: request.start, bookmarks: request.bookmarks, sink: sink)
        }
    }

    func sendBookmark(_ id: Int) {
        self.store.withLock { $0.sendBookmark(id) }
    }

    func finishWatch(_ id: Int) {
        self.store.withLock { $0.finishWatch(id) }
    }

    func dropWatch(_ id: Int) {
        self.store.withLock { $0.dropWatch(id) }
    }
}
