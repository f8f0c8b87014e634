import Foundation
import KubeClient
import KubeModel
import Logging
import Metrics
import Synchronization
import WeftAPI
import WeftCompiler

/// Writes each Weft resource's conditions through the status subresource, only when they differ from what
/// the cluster has, and records an Event when a resource stops being accepted. Only the leader writes.
///
/// Conditions are merged with the object's current ones, so `lastTransitionTime` survives controller
/// restarts and changes only when a condition's status does.
public final class StatusWriter: CompileResultSink {
    /// The current object of a Weft resource as the informers cache it.
    public struct Current: Sendable {
        public var apiVersion: String
        public var metadata: meta.v1.ObjectMeta
        public var status: WeftStatus?

        public init(apiVersion: String, metadata: meta.v1.ObjectMeta, status: WeftStatus?) {
            self.apiVersion = apiVersion
            self.metadata = metadata
            self.status = status
        }
    }

    public typealias Lookup = @Sendable (ResourceRef) -> Current?

    private let api: any KubeAPI
    private let lookup: Lookup
    /// Resources whose write failed, retried with per-resource exponential backoff.
    public let retries: WorkQueue<ResourceRef>
    private let isLeader: @Sendable () -> Bool
    private let identity: String
    private let logger: Logger
    private let now: @Sendable () -> Date
    private let writes = Counter(label: "weft_controller_status_writes_total")
    private let failures = Counter(label: "weft_controller_status_write_failures_total")
    private let events: EventRecorder
    /// Conditions the API server refused (422): not sent again until they change.
    private let refused = Mutex<[ResourceRef: [meta.v1.Condition]]>([:])
    /// What each of this writer's last writes left on the server, with the resourceVersion it replaced: until
    /// the informer delivers the write, the cache still shows that older version, and comparing with it would
    /// write the same status again (one redundant PATCH per resource and compile while the watch lags).
    private let written = Mutex<[ResourceRef: Written]>([:])

    struct Written {
        /// The resourceVersion the write was computed against.
        var replaced: String
        /// The object as the PATCH returned it.
        var result: Current
    }

    public static let fieldManager = "weft-controller"

    public init(
        api: any KubeAPI, lookup: @escaping Lookup, isLeader: @escaping @Sendable () -> Bool,
        identity: String, logger: Logger, now: @escaping @Sendable () -> Date = { Date() },
        retries: WorkQueue<ResourceRef> = WorkQueue()
    ) {
        self.api = api
        self.retries = retries
        self.lookup = lookup
        self.isLeader = isLeader
        self.identity = identity
        self.logger = logger
        self.now = now
        self.events = EventRecorder(api: api, instance: identity, logger: logger, now: now)
    }

    public func apply(_ result: CompileResult, snapshot: WeftSnapshot, state: ControllerState) async {
        guard self.isLeader() else { return }
        let now = rfc3339(self.now())
        var pending: [(ResourceRef, Current, [meta.v1.Condition], Int64?, meta.v1.Condition?)] = []
        self.written.withLock { written in
            written = written.filter { result.statuses[$0.key] != nil }
        }
        for (ref, status) in result.statuses.sorted(by: { $0.key < $1.key }) {
            guard let current = self.current(ref) else { continue }
            let existing = current.status?.conditions ?? []
            let desired = existing.mergingKeepingOthers(status.conditions, now: now)
            let generation = current.metadata.generation
            guard desired != existing || current.status?.observedGeneration != generation else { continue }
            guard self.refused.withLock({ $0[ref] }) != Self.withoutTimes(desired) else { continue }
            var event: meta.v1.Condition?
            if let accepted = desired[type: ConditionType.accepted], accepted.status == .false,
                existing[type: ConditionType.accepted]?.status != .false
                    || existing[type: ConditionType.accepted]?.message != accepted.message
            {
                event = accepted
            }
            pending.append((ref, current, desired, generation, event))
        }
        // Several writes in flight, as client-go controllers run several workers; bounded.
        await withTaskGroup(of: Void.self) { group in
            var inFlight = 0
            for (ref, current, conditions, generation, event) in pending {
                if inFlight == Self.concurrentWrites {
                    await group.next()
                    inFlight -= 1
                }
                inFlight += 1
                group.addTask {
                    await self.write(ref, current: current, conditions: conditions, generation: generation)
                    if let event { await self.recordEvent(ref, current: current, condition: event) }
                }
            }
        }
    }

    /// The object as the cache has it, or as this writer's last write left it while the cache still shows the
    /// version that write replaced. resourceVersions are only compared for equality (they are opaque).
    func current(_ ref: ResourceRef) -> Current? {
        guard let cached = self.lookup(ref) else {
            self.written.withLock { $0[ref] = nil }
            return nil
        }
        return self.written.withLock { written in
            guard let last = written[ref] else { return cached }
            if cached.metadata.resourceVersion == last.replaced { return last.result }
            // The cache moved on: to our write, or to someone else's change after it.
            written[ref] = nil
            return cached
        }
    }

    /// Conditions as compared with refused ones: the transition time is set anew at each attempt.
    static func withoutTimes(_ conditions: [meta.v1.Condition]) -> [meta.v1.Condition] {
        conditions.map { condition in
            var condition = condition
            condition.lastTransitionTime = ""
            return condition
        }
    }

    /// Status writes in flight at once.
    static let concurrentWrites = 8

    private func write(_ ref: ResourceRef, current: Current, conditions: [meta.v1.Condition], generation: Int64?) async
    {
        var status: JSONObject = ["conditions": (try? JSONValue.from(encodable: conditions)) ?? .array([])]
        if let generation { status["observedGeneration"] = .int(generation) }
        let patch = KubePatch.merge(.object(["status": .object(status)]))
        let options = PatchOptions(subresource: "status", fieldManager: Self.fieldManager)
        func written<R: WeftResource>(_ object: R) -> Current {
            Current(apiVersion: R.apiVersion, metadata: object.metadata, status: object.status)
        }
        do {
            let result: Current
            switch ref.kind {
            case weft.v1alpha1.VirtualService.kind:
                result = written(
                    try await self.api.patch(
                        weft.v1alpha1.VirtualService.self, namespace: ref.namespace,
                        name: ref.name, patch: patch, options: options))
            case weft.v1alpha1.DestinationPolicy.kind:
                result = written(
                    try await self.api.patch(
                        weft.v1alpha1.DestinationPolicy.self, namespace: ref.namespace,
                        name: ref.name, patch: patch, options: options))
            case weft.v1alpha1.MeshTLSPolicy.kind:
                result = written(
                    try await self.api.patch(
                        weft.v1alpha1.MeshTLSPolicy.self, namespace: ref.namespace,
                        name: ref.name, patch: patch, options: options))
            case weft.v1alpha1.AuthorizationPolicy.kind:
                result = written(
                    try await self.api.patch(
                        weft.v1alpha1.AuthorizationPolicy.self, namespace: ref.namespace,
                        name: ref.name, patch: patch, options: options))
            default:
                return
            }
            if let replaced = current.metadata.resourceVersion {
                self.written.withLock { $0[ref] = Written(replaced: replaced, result: result) }
            }
            self.writes.increment()
            self.refused.withLock { $0[ref] = nil }
            await self.retries.forget(ref)
            self.logger.debug("status written", metadata: ["k8s.resource": "\(ref)"])
        } catch let error as KubeClientError where error.isNotFound {
            self.logger.debug("status not written: resource gone", metadata: ["k8s.resource": "\(ref)"])
        } catch let error as KubeClientError where error.httpStatus == 422 || error.httpStatus == 400 {
            // The server refuses this status as it is: sending it again cannot succeed. The next compile that
            // changes the conditions writes again (the status still differs from the cluster's).
            self.failures.increment()
            self.refused.withLock { $0[ref] = Self.withoutTimes(conditions) }
            await self.retries.forget(ref)
            self.logger.error(
                "status write refused; not retried", metadata: ["k8s.resource": "\(ref)", "error": "\(error)"])
        } catch {
            self.failures.increment()
            await self.retries.addRateLimited(ref)
            self.logger.warning(
                "status write failed; will retry", metadata: ["k8s.resource": "\(ref)", "error": "\(error)"])
        }
    }

    private func recordEvent(_ ref: ResourceRef, current: Current, condition: meta.v1.Condition) async {
        let object = core.v1.ObjectReference(
            apiVersion: current.apiVersion, kind: ref.kind, namespace: ref.namespace, name: ref.name,
            uid: current.metadata.uid, resourceVersion: current.metadata.resourceVersion)
        await self.events.warning(involving: object, reason: condition.reason, message: condition.message)
    }
}

extension Array where Element == meta.v1.Condition {
    /// `merging(_:now:)`, keeping conditions of types this controller does not compute (someone else's).
    func mergingKeepingOthers(_ desired: [meta.v1.Condition], now: String) -> [meta.v1.Condition] {
        let ours = Set(desired.map(\.type))
        let merged = self.merging(desired, now: now)
        return merged + self.filter { !ours.contains($0.type) }
    }
}
