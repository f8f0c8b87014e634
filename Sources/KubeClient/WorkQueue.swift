import Synchronization

/// A queue of keys to reconcile, with client-go's workqueue semantics.
///
/// - A key is queued at most once however often it is added (the queue holds keys, not events: the reconciler
///   reads the current state, so coalescing is correct and bounds the queue by the number of distinct keys).
/// - A key is handed to one worker at a time. A key added while a worker holds it is queued again after
///   ``done(_:)``.
/// - ``addRateLimited(_:)`` delays a failed key by a per-key exponential backoff (5 ms doubling, capped at
///   5 min) and an overall token bucket (10/s, burst 100), whichever is longer; ``forget(_:)`` resets the key.
/// - Delayed keys wait in a deduplicated list ordered by due time; ``next()`` releases them when due. Time
///   comes from the injected clock and no task is spawned: a worker waiting in ``next()`` sleeps until the
///   earliest due time or until a key arrives.
///
/// ```swift
/// while let key = await queue.next() {
///     do { try await reconcile(key); await queue.forget(key) } catch { await queue.addRateLimited(key) }
///     await queue.done(key)
/// }
/// ```
public actor WorkQueue<Key: Hashable & Sendable> {
    /// Rate limits of ``addRateLimited(_:)``.
    public struct Configuration: Sendable, Hashable {
        /// The first retry delay of a key; each further failure doubles it.
        public var baseDelay: Duration
        /// The longest per-key delay.
        public var maxDelay: Duration
        /// Tokens per second of the overall bucket.
        public var bucketRate: Double
        /// Size of the overall bucket.
        public var bucketBurst: Int

        public init(
            baseDelay: Duration = .milliseconds(5), maxDelay: Duration = .seconds(300), bucketRate: Double = 10,
            bucketBurst: Int = 100
        ) {
            self.baseDelay = baseDelay
            self.maxDelay = maxDelay
            self.bucketRate = bucketRate
            self.bucketBurst = bucketBurst
        }
    }

    private let configuration: Configuration
    private let clock: ElapsedClock
    private let wakeups = Wakeups()

    /// Keys ready for a worker, in order; `head` is the first live slot.
    private var ready: [Key] = []
    private var head = 0
    /// Keys that are queued or must be queued again once their worker is done.
    private var dirty: Set<Key> = []
    /// Keys a worker holds.
    private var processing: Set<Key> = []
    /// Delayed keys: each key's due time, and the same ordered by due time.
    private var dueTimes: [Key: Duration] = [:]
    private var delayed: [(due: Duration, key: Key)] = []
    /// Failures per key since its last ``forget(_:)``.
    private var failures: [Key: Int] = [:]
    private var bucketTokens: Double
    private var bucketUpdated: Duration
    private var isShuttingDown = false

    public init(configuration: Configuration = .init(), clock: any Clock<Duration> = ContinuousClock()) {
        self.configuration = configuration
        self.clock = ElapsedClock(clock)
        self.bucketTokens = Double(configuration.bucketBurst)
        self.bucketUpdated = .zero
    }

    // MARK: - Adding

    /// Queues `key` unless it is already queued; a key a worker holds is queued again after ``done(_:)``.
    /// Ignored after ``shutDown()``.
    public func add(_ key: Key) {
        guard !self.isShuttingDown, !self.dirty.contains(key) else { return }
        self.dirty.insert(key)
        guard !self.processing.contains(key) else { return }
        self.ready.append(key)
        self.wakeups.wakeAll()
    }

    /// Queues `key` once `delay` has passed. A key already waiting keeps the earlier of the two due times.
    public func addAfter(_ key: Key, _ delay: Duration) {
        guard !self.isShuttingDown else { return }
        guard delay > .zero else { return self.add(key) }
        let due = self.clock.now + delay
        if let existing = self.dueTimes[key] {
            guard due < existing else { return }
            self.delayed.removeAll { $0.key == key }
        }
        self.dueTimes[key] = due
        let index = self.delayed.partitionPoint { $0.due > due }
        self.delayed.insert((due, key), at: index)
        if index == 0 { self.wakeups.wakeAll() }
    }

    /// Queues `key` after its backoff: the longer of its exponential delay and the token bucket's.
    public func addRateLimited(_ key: Key) {
        let attempts = self.failures[key, default: 0]
        self.failures[key] = attempts + 1
        self.addAfter(key, max(self.itemDelay(attempts: attempts), self.reserveToken()))
    }

    /// Resets the backoff of `key` (after it was handled successfully).
    public func forget(_ key: Key) {
        self.failures.removeValue(forKey: key)
    }

    /// How often `key` was rate-limited since its last ``forget(_:)``.
    public func numRequeues(_ key: Key) -> Int {
        self.failures[key, default: 0]
    }

    // MARK: - Consuming

    /// The next key to work on, waiting until one is ready. Returns nil once the queue is shut down and
    /// drained, or when the calling task is cancelled. The caller must call ``done(_:)`` with the key.
    public func next() async -> Key? {
        while true {
            if Task.isCancelled { return nil }
            self.releaseDueKeys()
            if let key = self.popReady() {
                self.processing.insert(key)
                self.dirty.remove(key)
                return key
            }
            if self.isShuttingDown { return nil }
            await self.wait(until: self.delayed.first?.due)
        }
    }

    /// Ends the processing of `key`; if it was added meanwhile it is queued again.
    public func done(_ key: Key) {
        self.processing.remove(key)
        if self.dirty.contains(key) {
            self.ready.append(key)
            self.wakeups.wakeAll()
        }
    }

    /// Stops accepting keys and drops delayed ones; ``next()`` hands out the keys already queued, then nil.
    public func shutDown() {
        self.isShuttingDown = true
        self.delayed = []
        self.dueTimes = [:]
        self.wakeups.wakeAll()
    }

    /// The number of keys ready for a worker (delayed keys count once due).
    public var count: Int {
        self.releaseDueKeys()
        return self.ready.count - self.head
    }

    /// The number of keys waiting for their due time.
    public var delayedCount: Int {
        self.releaseDueKeys()
        return self.delayed.count
    }

    // MARK: - Internals

    private func popReady() -> Key? {
        guard self.head < self.ready.count else { return nil }
        let key = self.ready[self.head]
        self.head += 1
        if self.head == self.ready.count {
            self.ready.removeAll(keepingCapacity: true)
            self.head = 0
        } else if self.head >= 64 && self.head * 2 >= self.ready.count {
            self.ready.removeFirst(self.head)
            self.head = 0
        }
        return key
    }

    private func releaseDueKeys() {
        guard !self.delayed.isEmpty else { return }
        let now = self.clock.now
        let due = self.delayed.partitionPoint { $0.due > now }
        guard due > 0 else { return }
        let keys = self.delayed[..<due].map(\.key)
        self.delayed.removeFirst(due)
        for key in keys {
            self.dueTimes.removeValue(forKey: key)
            self.add(key)
        }
    }

    private func itemDelay(attempts: Int) -> Duration {
        let base = self.configuration.baseDelay / .seconds(1)
        let limit = self.configuration.maxDelay / .seconds(1)
        guard attempts < 64 else { return self.configuration.maxDelay }
        let delay = base * Double(UInt64(1) << UInt64(attempts))
        return delay >= limit ? self.configuration.maxDelay : .wholeNanoseconds(delay)
    }

    /// Takes a token from the bucket; the answer is how long until that token exists.
    private func reserveToken() -> Duration {
        let rate = self.configuration.bucketRate
        guard rate > 0 else { return .zero }
        let now = self.clock.now
        let refill = (now - self.bucketUpdated) / .seconds(1) * rate
        self.bucketTokens = min(Double(self.configuration.bucketBurst), self.bucketTokens + refill)
        self.bucketUpdated = now
        self.bucketTokens -= 1
        return self.bucketTokens >= 0 ? .zero : .wholeNanoseconds(-self.bucketTokens / rate)
    }

    /// Sleeps until a key may be ready: woken by an add, by `deadline` (time since the queue was made), or by
    /// cancellation of the calling task.
    private func wait(until deadline: Duration?) async {
        let id = self.wakeups.register()
        await withTaskGroup(of: Void.self) { group in
            if let deadline {
                group.addTask { [clock = self.clock, wakeups = self.wakeups] in
                    try? await clock.sleep(until: deadline)
                    wakeups.wake(id)
                }
            }
            await withTaskCancellationHandler {
                await self.wakeups.wait(id)
            } onCancel: { [wakeups = self.wakeups] in
                wakeups.wake(id)
            }
            group.cancelAll()
        }
        self.wakeups.forget(id)
    }
}

// MARK: - Wakeups

/// Continuations of waiting workers. A waiter registers before it suspends, so a wake that comes in between
/// is remembered rather than lost.
final class Wakeups: Sendable {
    private enum Waiter {
        case registered
        case woken
        case waiting(CheckedContinuation<Void, Never>)
    }

    private struct State {
        var nextID = 0
        var waiters: [Int: Waiter] = [:]
    }

    private let state = Mutex(State())

    func register() -> Int {
        self.state.withLock { state in
            state.nextID += 1
            state.waiters[state.nextID] = .registered
            return state.nextID
        }
    }

    func wait(_ id: Int) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resume = self.state.withLock { state -> Bool in
                guard case .registered = state.waiters[id] else { return true }
                state.waiters[id] = .waiting(continuation)
                return false
            }
            if resume { continuation.resume() }
        }
    }

    func wake(_ id: Int) {
        let continuation = self.state.withLock { state -> CheckedContinuation<Void, Never>? in
            switch state.waiters[id] {
            case .registered:
                state.waiters[id] = .woken
                return nil
            case .waiting(let continuation):
                state.waiters[id] = .woken
                return continuation
            case .woken, nil:
                return nil
            }
        }
        continuation?.resume()
    }

    func wakeAll() {
        let continuations = self.state.withLock { state -> [CheckedContinuation<Void, Never>] in
            var continuations: [CheckedContinuation<Void, Never>] = []
            for (id, waiter) in state.waiters {
                switch waiter {
                case .registered: state.waiters[id] = .woken
                case .waiting(let continuation):
                    state.waiters[id] = .woken
                    continuations.append(continuation)
                case .woken: break
                }
            }
            return continuations
        }
        for continuation in continuations { continuation.resume() }
    }

    func forget(_ id: Int) {
        _ = self.state.withLock { $0.waiters.removeValue(forKey: id) }
    }
}

// MARK: - Clock

/// An injected clock read as the time elapsed since this value was made, so that instants can be stored and
/// compared without knowing the clock's `Instant` type.
struct ElapsedClock: Sendable {
    private let elapsed: @Sendable () -> Duration
    private let sleeper: @Sendable (Duration) async throws -> Void

    init(_ clock: any Clock<Duration>) {
        (self.elapsed, self.sleeper) = Self.open(clock)
    }

    private static func open<C: Clock<Duration>>(
        _ clock: C
    ) -> (@Sendable () -> Duration, @Sendable (Duration) async throws -> Void) {
        let start = clock.now
        return (
            { start.duration(to: clock.now) },
            { deadline in try await clock.sleep(until: start.advanced(by: deadline), tolerance: nil) }
        )
    }

    /// Time since this value was made.
    var now: Duration { self.elapsed() }

    /// Sleeps until `deadline` (time since this value was made); throws `CancellationError` when cancelled.
    func sleep(until deadline: Duration) async throws {
        try await self.sleeper(deadline)
    }

    func sleep(for duration: Duration) async throws {
        try await self.sleeper(self.now + duration)
    }
}

struct DeadlineExceeded: Error, Sendable {}

/// Runs `operation`, cancelling it when `deadline` (an ``ElapsedClock`` time) passes first.
func withDeadline<T: Sendable>(
    _ deadline: Duration, clock: ElapsedClock, _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await clock.sleep(until: deadline)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else { throw DeadlineExceeded() }
        return value
    }
}

extension Duration {
    /// `seconds` rounded to whole nanoseconds, so that 5 ms × 2ⁿ stays exact.
    static func wholeNanoseconds(_ seconds: Double) -> Duration {
        .nanoseconds(Int64((seconds * 1e9).rounded()))
    }
}

extension Array {
    /// The first index whose element satisfies `belongsInSecondPartition`; the array must be partitioned by it.
    func partitionPoint(where belongsInSecondPartition: (Element) -> Bool) -> Int {
        var low = 0
        var high = self.count
        while low < high {
            let middle = (low + high) / 2
            if belongsInSecondPartition(self[middle]) { high = middle } else { low = middle + 1 }
        }
        return low
    }
}
