import Foundation
import KubeClient
import Logging
import Metrics
import ServiceLifecycle
import Synchronization
import Testing
import WeftTesting

@Suite("WorkQueue")
struct WorkQueueTests {
    @Test("A key is queued once however often it is added")
    func addDeduplicates() async {
        let queue = WorkQueue<String>(clock: TestClock())
        await queue.add("a")
        await queue.add("b")
        await queue.add("a")
        #expect(await queue.count == 2)
        #expect(await queue.next() == "a")
        #expect(await queue.next() == "b")
        #expect(await queue.count == 0)
    }

    @Test("A key added while it is processed is queued again after done")
    func addWhileProcessing() async {
        let queue = WorkQueue<String>(clock: TestClock())
        await queue.add("a")
        #expect(await queue.next() == "a")
        await queue.add("a")
        await queue.add("a")
        #expect(await queue.count == 0)
        await queue.done("a")
        #expect(await queue.count == 1)
        #expect(await queue.next() == "a")
        await queue.done("a")
        #expect(await queue.count == 0)
    }

    @Test("next() waits for work")
    func nextWaits() async throws {
        let clock = TestClock()
        let queue = WorkQueue<String>(clock: clock)
        let key = try await withTimeout {
            try await withThrowingTaskGroup(of: String?.self) { group in
                group.addTask { await queue.next() }
                try await Task.sleep(for: .milliseconds(20))
                await queue.add("x")
                return try await group.next() ?? nil
            }
        }
        #expect(key == "x")
    }

    @Test("shutDown hands out queued keys, then nil, and wakes waiting workers")
    func shutDown() async throws {
        let queue = WorkQueue<String>(clock: TestClock())
        await queue.add("a")
        await queue.addAfter("later", .seconds(1))
        await queue.shutDown()
        await queue.add("b")
        #expect(await queue.next() == "a")
        #expect(await queue.next() == nil)
        #expect(await queue.delayedCount == 0)

        let idle = WorkQueue<String>(clock: TestClock())
        let key = try await withTimeout {
            try await withThrowingTaskGroup(of: String?.self) { group in
                group.addTask { await idle.next() }
                try await Task.sleep(for: .milliseconds(20))
                await idle.shutDown()
                return try await group.next() ?? nil
            }
        }
        #expect(key == nil)
    }

    @Test("A cancelled worker's next() returns nil")
    func cancellation() async throws {
        let queue = WorkQueue<String>(clock: TestClock())
        await queue.addAfter("a", .seconds(60))
        let key = try await withTimeout {
            try await withThrowingTaskGroup(of: String?.self) { group in
                group.addTask { await queue.next() }
                try await Task.sleep(for: .milliseconds(20))
                group.cancelAll()
                return try await group.next() ?? nil
            }
        }
        #expect(key == nil)
    }

    @Test("addAfter releases the key when due and keeps the earlier due time")
    func addAfter() async {
        let clock = TestClock()
        let queue = WorkQueue<String>(clock: clock)
        await queue.addAfter("a", .seconds(1))
        await queue.addAfter("a", .seconds(5))
        #expect(await queue.count == 0)
        #expect(await queue.delayedCount == 1)
        clock.advance(by: .milliseconds(999))
        #expect(await queue.count == 0)
        clock.advance(by: .milliseconds(1))
        #expect(await queue.count == 1)
        #expect(await queue.delayedCount == 0)
        await queue.addAfter("b", .zero)
        #expect(await queue.count == 2)
    }

    @Test("A waiting worker wakes at the due time, also for a key due earlier than the one it sleeps for")
    func workerWakesWhenDue() async throws {
        let clock = TestClock()
        let queue = WorkQueue<String>(clock: clock)
        await queue.addAfter("late", .seconds(10))
        let key = try await withTimeout {
            try await withThrowingTaskGroup(of: String?.self) { group in
                group.addTask { await queue.next() }
                #expect(await becomesTrue { clock.nextDeadline == .init(offset: .seconds(10)) })
                await queue.addAfter("early", .seconds(1))
                #expect(await becomesTrue { clock.nextDeadline == .init(offset: .seconds(1)) })
                clock.advance(by: .seconds(1))
                return try await group.next() ?? nil
            }
        }
        #expect(key == "early")
        #expect(await queue.delayedCount == 1)
    }

    @Test("addRateLimited backs off 5 ms doubling; forget resets")
    func perItemBackoff() async {
        let clock = TestClock()
        let queue = WorkQueue<String>(clock: clock)
        for (attempt, delay) in [5, 10, 20, 40, 80].map({ Duration.milliseconds($0) }).enumerated() {
            await queue.addRateLimited("a")
            #expect(await queue.numRequeues("a") == attempt + 1)
            clock.advance(by: delay - .nanoseconds(1))
            #expect(await queue.count == 0, "attempt \(attempt)")
            clock.advance(by: .nanoseconds(1))
            #expect(await queue.count == 1, "attempt \(attempt)")
            #expect(await queue.next() == "a")
            await queue.done("a")
        }
        await queue.forget("a")
        #expect(await queue.numRequeues("a") == 0)
        await queue.addRateLimited("a")
        clock.advance(by: .milliseconds(5))
        #expect(await queue.count == 1)
    }

    @Test("The per-item backoff is capped at 5 minutes")
    func backoffCap() async {
        let clock = TestClock()
        let queue = WorkQueue<String>(clock: clock)
        for _ in 0..<30 { await queue.addRateLimited("a") }
        clock.advance(by: .milliseconds(5))
        #expect(await queue.next() == "a")
        await queue.done("a")
        await queue.addRateLimited("a")
        clock.advance(by: .seconds(299))
        #expect(await queue.count == 0)
        clock.advance(by: .seconds(1))
        #expect(await queue.count == 1)
    }

    @Test("The token bucket allows a burst of 100, then 10 per second")
    func tokenBucket() async {
        let clock = TestClock()
        let queue = WorkQueue<Int>(clock: clock)
        for key in 0..<102 { await queue.addRateLimited(key) }
        clock.advance(by: .milliseconds(5))
        #expect(await queue.count == 100)
        clock.advance(by: .milliseconds(94))
        #expect(await queue.count == 100)
        clock.advance(by: .milliseconds(1))
        #expect(await queue.count == 101)
        clock.advance(by: .milliseconds(100))
        #expect(await queue.count == 102)
    }

    @Test("Concurrent workers never hold the same key at once and handle every add")
    func concurrentWorkers() async throws {
        let queue = WorkQueue<Int>(clock: TestClock())
        let active = Locked<Set<Int>>([])
        let overlaps = Locked(0)
        try await withTimeout {
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<3 {
                    group.addTask {
                        while let key = await queue.next() {
                            if !active.withLock({ $0.insert(key).inserted }) { overlaps.withLock { $0 += 1 } }
                            await Task.yield()
                            _ = active.withLock { $0.remove(key) }
                            await queue.done(key)
                        }
                    }
                }
                for _ in 0..<50 {
                    for key in 0..<5 { await queue.add(key) }
                    await Task.yield()
                }
                await queue.shutDown()
            }
        }
        #expect(overlaps.withLock { $0 } == 0)
        #expect(await queue.count == 0)
    }
}

// MARK: - Helpers shared by the KubeClient tests

struct TimeoutError: Error, CustomStringConvertible {
    var description: String { "the test ran out of time" }
}

/// Runs `body`, failing with `TimeoutError` if it takes longer than `timeout` (real time): a hang guard, never an
/// assertion on speed (every suite runs at once on the cooperative pool: a 20 s default once ran out on a healthy test).
func withTimeout<T: Sendable>(
    _ timeout: Duration = .seconds(120), _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else { throw TimeoutError() }
        return value
    }
}

let testLogger = Logger(label: "weft.test")

/// Runs `body` against a fresh `FakeAPIServer` and a `KubeClient` talking to it.
func withFakeCluster(_ body: (FakeAPIServer, KubeClient) async throws -> Void) async throws {
    try await FakeAPIServer.start().withClient(logger: testLogger, body)
}

/// Runs `service` while `body` runs (with a time limit), then cancels it and waits for it to end.
func running(_ service: some Service, _ body: @escaping @Sendable () async throws -> Void) async throws {
    try await withTimeout(.seconds(30)) {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await service.run() }
            try await body()
            group.cancelAll()
            try await group.waitForAll()
        }
    }
}

/// Polls `condition` every 10 ms until it holds or `timeout` (real time) passes; answers whether it held.
func becomesTrue(
    within timeout: Duration = .seconds(10), _ condition: @Sendable () async throws -> Bool
) async rethrows -> Bool {
    let clock = ContinuousClock()
    let end = clock.now.advanced(by: timeout)
    while clock.now < end {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return try await condition()
}

/// A value behind a lock, shareable between tasks.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    init(_ value: Value) {
        self.mutex = Mutex(value)
    }

    func withLock<Result>(_ body: (inout sending Value) throws -> sending Result) rethrows -> sending Result {
        try self.mutex.withLock(body)
    }
}

/// A metrics backend for tests, bound with `withMetricsFactory`: counters sum, recorders keep the last value.
final class InformerMetricsRecorder: MetricsFactory, Sendable {
    private let values = Mutex<[String: Double]>([:])

    /// The value of a metric by label and dimensions (in the order they were given), if it was ever written.
    func value(_ label: String, _ dimensions: [(String, String)] = []) -> Double? {
        self.values.withLock { $0[Self.key(label, dimensions)] }
    }

    private static func key(_ label: String, _ dimensions: [(String, String)]) -> String {
        ([label] + dimensions.map { "\($0.0)=\($0.1)" }).joined(separator: ",")
    }

    private final class Handler: CounterHandler, RecorderHandler, TimerHandler, Sendable {
        let key: String
        let values: InformerMetricsRecorder

        init(key: String, values: InformerMetricsRecorder) {
            self.key = key
            self.values = values
        }

        func increment(by amount: Int64) { self.values.values.withLock { $0[self.key, default: 0] += Double(amount) } }
        func reset() { self.values.values.withLock { $0[self.key] = 0 } }
        func record(_ value: Int64) { self.record(Double(value)) }
        func record(_ value: Double) { self.values.values.withLock { $0[self.key] = value } }
        func recordNanoseconds(_ duration: Int64) { self.record(Double(duration)) }
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        Handler(key: Self.key(label, dimensions), values: self)
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        Handler(key: Self.key(label, dimensions), values: self)
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        Handler(key: Self.key(label, dimensions), values: self)
    }

    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}
}
