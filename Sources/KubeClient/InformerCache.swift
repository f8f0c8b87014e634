public import KubeModel
import Synchronization

/// The objects an ``Informer`` has seen, indexed by key, by namespace and by label `key=value`.
///
/// Reads are synchronous and safe from any task; only the informer writes. Lists are sorted by key, so that
/// whoever builds a snapshot from them gets a deterministic order.
public final class InformerCache<R: KubeResource>: Sendable {
    private let store = Mutex(InformerStore<R>())

    public init() {}

    /// The object with this key, if cached.
    public func get(_ key: ObjectKey) -> R? {
        self.store.withLock { $0.objects[key] }
    }

    /// Every object, or those of one namespace; sorted by key.
    public func list(namespace: String? = nil) -> [R] {
        self.store.withLock { $0.list(namespace: namespace) }
    }

    /// The objects whose labels match `labelSelector` (an empty selector matches all), optionally in one
    /// namespace; sorted by key.
    public func list(labelSelector: meta.v1.LabelSelector, namespace: String? = nil) -> [R] {
        self.store.withLock { $0.list(labelSelector: labelSelector, namespace: namespace) }
    }

    /// The keys of every cached object, sorted.
    public var keys: [ObjectKey] {
        self.store.withLock { $0.objects.keys.sorted() }
    }

    public var count: Int {
        self.store.withLock { $0.objects.count }
    }

    /// The version the cache is current to: the list's, then that of the last watch event or bookmark.
    public var resourceVersion: String? {
        self.store.withLock { $0.resourceVersion }
    }

    // MARK: - Writes (the informer's)

    /// Stores an added or modified object; answers whether the cache changed.
    func apply(_ object: R, resourceVersion: String?) -> Bool {
        self.store.withLock { store in
            if let resourceVersion { store.resourceVersion = resourceVersion }
            return store.upsert(object)
        }
    }

    /// Removes a deleted object; answers whether it was cached.
    func delete(_ object: R, resourceVersion: String?) -> Bool {
        self.store.withLock { store in
            if let resourceVersion { store.resourceVersion = resourceVersion }
            return store.remove(object.key) != nil
        }
    }

    func setResourceVersion(_ resourceVersion: String) {
        self.store.withLock { $0.resourceVersion = resourceVersion }
    }

    /// Replaces the content with a fresh list; answers the keys that differ (added, changed or deleted).
    func replace(with objects: [R], resourceVersion: String?) -> [ObjectKey] {
        self.store.withLock { store in
            store.resourceVersion = resourceVersion
            return store.replace(with: objects)
        }
    }
}

// MARK: - Store

/// The cache content and its indexes, as a value.
struct InformerStore<R: KubeResource>: Sendable {
    struct Label: Hashable, Sendable {
        var key: String
        var value: String
    }

    private(set) var objects: [ObjectKey: R] = [:]
    private var byNamespace: [String: Set<ObjectKey>] = [:]
    private var byLabel: [Label: Set<ObjectKey>] = [:]
    var resourceVersion: String?

    /// Inserts or replaces an object; answers whether the content changed.
    mutating func upsert(_ object: R) -> Bool {
        let key = object.key
        if let old = self.objects[key] {
            guard old != object else { return false }
            self.unindex(old, key: key)
        }
        self.objects[key] = object
        self.index(object, key: key)
        return true
    }

    mutating func remove(_ key: ObjectKey) -> R? {
        guard let old = self.objects.removeValue(forKey: key) else { return nil }
        self.unindex(old, key: key)
        return old
    }

    /// Replaces the content; answers the keys that were added, changed or removed, sorted.
    mutating func replace(with objects: [R]) -> [ObjectKey] {
        var changed: [ObjectKey] = []
        var seen: Set<ObjectKey> = []
        for object in objects {
            seen.insert(object.key)
            if self.upsert(object) { changed.append(object.key) }
        }
        for key in self.objects.keys where !seen.contains(key) {
            _ = self.remove(key)
            changed.append(key)
        }
        return changed.sorted()
    }

    func list(namespace: String?) -> [R] {
        guard let namespace else { return self.sorted(self.objects.keys) }
        return self.sorted(self.byNamespace[namespace] ?? [])
    }

    func list(labelSelector: meta.v1.LabelSelector, namespace: String?) -> [R] {
        var candidates: Set<ObjectKey>?
        if let namespace { candidates = self.byNamespace[namespace] ?? [] }
        for (key, value) in labelSelector.matchLabels ?? [:] {
            let keys = self.byLabel[Label(key: key, value: value)] ?? []
            candidates = candidates.map { $0.intersection(keys) } ?? keys
        }
        let keys = candidates.map(Array.init) ?? Array(self.objects.keys)
        return self.sorted(keys).filter { labelSelector.matches($0.metadata.labels ?? [:]) }
    }

    private func sorted<Keys: Sequence<ObjectKey>>(_ keys: Keys) -> [R] {
        keys.sorted().compactMap { self.objects[$0] }
    }

    private mutating func index(_ object: R, key: ObjectKey) {
        self.byNamespace[key.namespace, default: []].insert(key)
        for (name, value) in object.metadata.labels ?? [:] {
            self.byLabel[Label(key: name, value: value), default: []].insert(key)
        }
    }

    private mutating func unindex(_ object: R, key: ObjectKey) {
        Self.remove(key, from: &self.byNamespace, at: key.namespace)
        for (name, value) in object.metadata.labels ?? [:] {
            Self.remove(key, from: &self.byLabel, at: Label(key: name, value: value))
        }
    }

    private static func remove<IndexKey: Hashable>(
        _ key: ObjectKey, from index: inout [IndexKey: Set<ObjectKey>], at indexKey: IndexKey
    ) {
        index[indexKey]?.remove(key)
        if index[indexKey]?.isEmpty == true { index[indexKey] = nil }
    }
}
