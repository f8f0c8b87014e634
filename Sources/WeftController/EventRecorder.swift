import Foundation
import KubeClient
import KubeModel
import Logging
import Metrics

/// Records core/v1 Events as client-go's recorder does.
///
/// - Names are `<object name>.<unix nanoseconds in hex>`, the object's name cut (and stripped of a trailing
///   `-` or `.`) so that the whole stays a valid name of at most 253 characters.
/// - An Event like one recorded before (same object, type, reason and message: client-go's `EventCorrelator`
///   key) is not created again: the existing one's `count` goes up and its `lastTimestamp` moves, with a merge
///   PATCH. When that Event is gone (the API server keeps Events an hour), a new one is created.
/// - The memory of recorded Events is bounded: the 4,096 most recently used, as client-go's LRU cache.
actor EventRecorder {
    struct Key: Hashable {
        var namespace: String
        var kind: String
        var name: String
        var uid: String?
        var type: String
        var reason: String
        var message: String
    }

    private struct Entry {
        var eventName: String
        var count: Int32
        var lastUsed: UInt64
    }

    static let cacheSize = 4096
    static let maxNameLength = 253

    private let api: any KubeAPI
    private let component: String
    private let instance: String
    private let logger: Logger
    private let now: @Sendable () -> Date
    private var cache: [Key: Entry] = [:]
    private var uses: UInt64 = 0
    private let created = Counter(label: "weft_controller_events_total")
    private let failed = Counter(label: "weft_controller_event_failures_total")

    init(
        api: any KubeAPI, component: String = "weft-controller", instance: String, logger: Logger,
        now: @escaping @Sendable () -> Date
    ) {
        self.api = api
        self.component = component
        self.instance = instance
        self.logger = logger
        self.now = now
    }

    /// Records a Warning Event on the object.
    func warning(involving object: core.v1.ObjectReference, reason: String, message: String) async {
        let message = String(message.prefix(1024))
        let key = Key(
            namespace: object.namespace ?? "", kind: object.kind ?? "", name: object.name ?? "", uid: object.uid,
            type: "Warning", reason: reason, message: message)
        let time = self.now()
        let timestamp = rfc3339(time)
        self.uses += 1
        if var entry = self.cache[key] {
            entry.count += 1
            entry.lastUsed = self.uses
            do {
                _ = try await self.api.patch(
                    core.v1.Event.self, namespace: key.namespace, name: entry.eventName,
                    patch: .merge(.object(["count": .int(Int64(entry.count)), "lastTimestamp": .string(timestamp)])),
                    options: PatchOptions())
                self.cache[key] = entry
                return
            } catch let error as KubeClientError where error.isNotFound {
                self.cache[key] = nil
            } catch {
                self.failed.increment()
                self.logger.warning(
                    "event not updated", metadata: ["k8s.event": "\(entry.eventName)", "error": "\(error)"])
                return
            }
        }
        let name = Self.eventName(for: key.name, at: time)
        var event = core.v1.Event.new(namespace: key.namespace, name: name)
        event.fields.involvedObject = object
        event.fields.reason = reason
        event.fields.message = message
        event.fields.type = key.type
        event.fields.source = core.v1.EventSource(component: self.component)
        event.fields.reportingComponent = self.component
        event.fields.reportingInstance = self.instance
        event.fields.action = "Reconcile"
        event.fields.firstTimestamp = timestamp
        event.fields.lastTimestamp = timestamp
        event.fields.count = 1
        do {
            _ = try await self.api.create(event)
            self.created.increment()
            self.remember(key, Entry(eventName: name, count: 1, lastUsed: self.uses))
        } catch {
            self.failed.increment()
            self.logger.warning("event not recorded", metadata: ["k8s.event": "\(name)", "error": "\(error)"])
        }
    }

    private func remember(_ key: Key, _ entry: Entry) {
        self.cache[key] = entry
        guard self.cache.count > Self.cacheSize,
            let oldest = self.cache.min(by: { $0.value.lastUsed < $1.value.lastUsed })?.key
        else { return }
        self.cache[oldest] = nil
    }

    /// `<name>.<nanoseconds since 1970 in hex>`, at most 253 characters.
    static func eventName(for objectName: String, at time: Date) -> String {
        let stamp = String(UInt64(max(0, time.timeIntervalSince1970) * 1_000_000_000), radix: 16)
        var prefix = Substring(objectName.prefix(Self.maxNameLength - 1 - stamp.count))
        while let last = prefix.last, last == "-" || last == "." { prefix.removeLast() }
        return "\(prefix).\(stamp)"
    }
}
