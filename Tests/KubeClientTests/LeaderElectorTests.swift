import Foundation
import KubeModel
import Logging
import ServiceLifecycle
import Testing
import WeftTesting

@testable import KubeClient

@Suite("LeaderElector")
struct LeaderElectorTests {
    typealias Lease = coordination.v1.Lease

    static var microTime: Regex<Substring> { #/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/# }

    // MARK: - Pure

    @Test(
        "MicroTime formats UTC with six fractional digits and parses RFC 3339",
        arguments: [
            (0.0, "1970-01-01T00:00:00.000000Z"),
            (1_795_557_053.123456, "2026-11-24T21:50:53.123456Z"),
            (951_782_400.5, "2000-02-29T00:00:00.500000Z"),
            (-1.000001, "1969-12-31T23:59:58.999999Z"),
        ])
    func microTime(seconds: Double, text: String) throws {
        #expect(MicroTime.format(Date(timeIntervalSince1970: seconds)) == text)
        let parsed = try #require(MicroTime.parse(text))
        #expect(abs(parsed.timeIntervalSince1970 - seconds) < 0.000_001)
    }

    @Test("MicroTime parses offsets and RFC 3339 without fraction, and rejects junk")
    func microTimeParsing() {
        #expect(MicroTime.parse("2026-11-24T22:50:53+01:00")?.timeIntervalSince1970 == 1_795_557_053)
        #expect(MicroTime.parse("2026-11-24T21:50:53Z")?.timeIntervalSince1970 == 1_795_557_053)
        for junk in ["", "2026-11-24", "2026-11-24T21:50:53", "2026-13-24T21:50:53Z", "2026-11-24T21:50:53.Z"] {
            #expect(MicroTime.parse(junk) == nil, "\(junk)")
        }
    }

    @Test("A holder's lease runs for leaseDurationSeconds after this replica saw its record change")
    func expiry() {
        let spec = coordination.v1.LeaseSpec(
            holderIdentity: "other", leaseDurationSeconds: 15, renewTime: "2026-11-24T21:50:53.000000Z")
        let seen = LeaderElector.Observation(spec: spec, at: .seconds(100))
        #expect(LeaderElector.isHeld(seen, now: .seconds(100)))
        #expect(LeaderElector.isHeld(seen, now: .milliseconds(114_999)))
        #expect(!LeaderElector.isHeld(seen, now: .seconds(115)))
        // Released (no holder) or without a duration: free at once.
        var released = spec
        released.holderIdentity = ""
        #expect(!LeaderElector.isHeld(.init(spec: released, at: .seconds(100)), now: .seconds(100)))
        #expect(
            !LeaderElector.isHeld(
                .init(spec: coordination.v1.LeaseSpec(holderIdentity: "other"), at: .seconds(100)), now: .seconds(100)))
    }

    // MARK: - Through FakeAPIServer, on an injected clock

    @Test("A standby waits while the leader renews, for longer than the lease; the Lease looks like client-go's")
    func standbyWaitsWhileLeaderRenews() async throws {
        try await withFakeCluster { _, client in
            let election = Election()
            let first = election.elector("first", api: client)
            let second = election.elector("second", api: client)
            try await election.running([first, second]) {
                #expect(first.isLeader)
                #expect(!second.isLeader)
                #expect(second.observedHolder == "first")
                let lease = try await client.get(Lease.self, namespace: "weft-system", name: "weft-controller")
                let spec = try #require(lease.spec)
                #expect(spec.holderIdentity == "first")
                #expect(spec.leaseDurationSeconds == 15)
                #expect(spec.leaseTransitions == 0)
                #expect(try Self.microTime.wholeMatch(in: spec.acquireTime ?? "") != nil)
                #expect(spec.renewTime == MicroTime.format(Election.epoch))
                // 30 s: twice the lease duration. The leader renews every 2 s; the standby never takes over.
                for _ in 0..<15 {
                    #expect(await election.step(by: .seconds(2)))
                    #expect(first.isLeader)
                    #expect(!second.isLeader)
                }
                let renewed = try await client.get(Lease.self, namespace: "weft-system", name: "weft-controller")
                #expect(renewed.spec?.renewTime == MicroTime.format(Election.epoch.addingTimeInterval(30)))
                #expect(renewed.spec?.acquireTime == spec.acquireTime)
                #expect(renewed.spec?.leaseTransitions == 0)
                #expect(renewed.spec?.holderIdentity == "first")
            }
        }
    }

    @Test(
        "A stopping leader releases the Lease, cancelled or shut down gracefully; the standby takes over at its next retry",
        arguments: [false, true])
    func releaseAndTakeover(graceful: Bool) async throws {
        try await withFakeCluster { _, client in
            let election = Election()
            let first = election.elector("first", api: client)
            let second = election.elector("second", api: client)
            let group = ServiceGroup(configuration: .init(services: [first], logger: testLogger))
            try await election.withLeader(first, run: { try await group.run() }, standby: second) { stopFirst in
                #expect(first.isLeader)
                #expect(second.observedHolder == "first")
                #expect(await election.step(by: .seconds(2), waking: [first, second]))
                // Stop the leader: a graceful shutdown, or a plain cancellation (the release must be sent all
                // the same, shielded from it).
                if graceful {
                    await group.triggerGracefulShutdown()
                }
                await stopFirst(!graceful)
                #expect(!first.isLeader)
                let released = try await client.get(Lease.self, namespace: "weft-system", name: "weft-controller")
                #expect(released.spec?.holderIdentity ?? "" == "")
                #expect(released.spec?.leaseDurationSeconds == 1)
                #expect(released.spec?.leaseTransitions == 0)
                // The standby's next retry (2 s, not the 15 s lease duration) takes the released Lease.
                let releasedAt = election.clock.now
                #expect(await election.step(by: .seconds(2), waking: [second]))
                #expect(second.isLeader)
                #expect(releasedAt.duration(to: election.clock.now) == .seconds(2))
                let taken = try await client.get(Lease.self, namespace: "weft-system", name: "weft-controller")
                #expect(taken.spec?.holderIdentity == "second")
                #expect(taken.spec?.leaseTransitions == 1)
                #expect(taken.spec?.leaseDurationSeconds == 15)
            }
        }
    }

    @Test(
        "Expiry is measured on the local clock from the last change seen: a holder whose clock is off by ±30 s or 2 h is neither taken over early nor kept late",
        arguments: [-7200.0, -30.0, 30.0, 7200.0])
    func expiryIgnoresRemoteClock(skew: TimeInterval) async throws {
        try await withFakeCluster { _, client in
            let election = Election()
            // The holder's renewTime, written by a clock `skew` seconds off ours.
            var lease = Lease.new(namespace: "weft-system", name: "weft-controller")
            lease.spec = coordination.v1.LeaseSpec(
                holderIdentity: "other", leaseDurationSeconds: 15,
                acquireTime: MicroTime.format(Election.epoch.addingTimeInterval(skew)),
                renewTime: MicroTime.format(Election.epoch.addingTimeInterval(skew)), leaseTransitions: 4)
            lease = try await client.create(lease)
            let elector = election.elector("me", api: client)
            try await election.running([elector]) {
                // Seen at 0 s; 12 s pass; then the holder renews (the record changes), which the elector sees at
                // its round at 14 s: the 15 s start again from there.
                for _ in 0..<6 {
                    #expect(await election.step(by: .seconds(2)))
                    #expect(!elector.isLeader)
                }
                var renewed = try await client.get(Lease.self, namespace: "weft-system", name: "weft-controller")
                renewed.spec?.renewTime = MicroTime.format(Election.epoch.addingTimeInterval(skew + 12))
                _ = try await client.update(renewed)
                for _ in 0..<8 {
                    #expect(await election.step(by: .seconds(2)))
                    #expect(!elector.isLeader)
                }
                // At 28 s (14 s after the change was seen) still held; at 30 s it has expired: taken over.
                #expect(await election.step(by: .seconds(2)))
                #expect(elector.isLeader)
                let taken = try await client.get(Lease.self, namespace: "weft-system", name: "weft-controller")
                #expect(taken.spec?.holderIdentity == "me")
                #expect(taken.spec?.leaseTransitions == 5)
            }
        }
    }

    @Test(
        "Two electors whose clocks differ by 30 s: no second leader while the first renews, takeover a lease duration after it stops",
        arguments: [-30.0, 30.0])
    func skewedElectors(skew: TimeInterval) async throws {
        try await withFakeCluster { fake, client in
            let election = Election()
            let first = election.elector("first", api: client, skew: 0)
            let second = election.elector("second", api: client, skew: skew)
            // The standby starts 1 s after the leader: the leader renews at even seconds, the standby reads at odd
            // ones, so each step wakes exactly one of them.
            try await election.withLeader(
                first, run: { try await first.run() }, standby: second, standbyDelay: .seconds(1)
            ) { stopFirst in
                for _ in 0..<10 {
                    #expect(await election.step(by: .seconds(1), waking: [first], sleeping: 2))
                    #expect(await election.step(by: .seconds(1), waking: [second], sleeping: 2))
                    #expect(first.isLeader)
                    #expect(!second.isLeader)
                }
                // At 21 s the standby saw the renew of 20 s. The leader dies without releasing (its release fails).
                fake.failNext(1, status: 500, method: "PUT", pathContains: "/leases/")
                await stopFirst(true)
                #expect(!first.isLeader)
                // The standby waits the 15 s lease duration from 21 s: still held at 35 s, taken at 37 s.
                for _ in 0..<7 {
                    #expect(await election.step(by: .seconds(2), waking: [second]))
                    #expect(!second.isLeader)
                }
                #expect(await election.step(by: .seconds(2), waking: [second]))
                #expect(second.isLeader)
            }
        }
    }

    @Test("Leadership is lost when no renew succeeds within renewDeadline, and regained after")
    func lostWhenRenewsFail() async throws {
        try await withFakeCluster { fake, client in
            let election = Election()
            let elector = election.elector("me", api: client)
            try await election.running([elector]) {
                #expect(elector.isLeader)
                // Renews at 2, 4, 6 and 8 s fail; at 10 s the renew deadline (10 s after the last renew) has
                // passed: leadership is lost, and the fifth failure (the first attempt to acquire) delays the
                // comeback to the next retry.
                fake.failNext(5, status: 500, method: "PUT", pathContains: "/leases/")
                for _ in 0..<4 {
                    #expect(await election.step(by: .seconds(2)))
                    #expect(elector.isLeader)
                }
                #expect(await election.step(by: .seconds(2)))
                #expect(!elector.isLeader)
                #expect(await election.step(by: .seconds(2)))
                #expect(elector.isLeader)
                // The first acquire created the Lease (POST); then 4 + 1 failed PUTs and the one that took it back.
                #expect(fake.count(method: "PUT", pathContains: "/leases/") == 6)
            }
        }
    }

    @Test("leadershipChanges reports the current state, then each change, and ends with run()")
    func leadershipChanges() async throws {
        try await withFakeCluster { _, client in
            let election = Election()
            let elector = election.elector("me", api: client)
            let changes = elector.leadershipChanges
            let seen = Locked<[Bool]>([])
            try await withTimeout(.seconds(30)) {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for await isLeader in changes { seen.withLock { $0.append(isLeader) } }
                    }
                    #expect(await becomesTrue { seen.withLock { $0 } == [false] })
                    await withThrowingTaskGroup(of: Void.self) { inner in
                        inner.addTask { try await elector.run() }
                        // Newest wins: wait until the reader took `true` before the next change.
                        #expect(await becomesTrue { seen.withLock { $0 } == [false, true] })
                        inner.cancelAll()
                    }
                    try await group.waitForAll()
                }
            }
            #expect(seen.withLock { $0 } == [false, true, false])
        }
    }
}

/// Electors on one ``TestClock``, moved on in explicit steps: after each step the test waits (in real time,
/// bounded) until every running elector finished its round and sleeps again, so nothing depends on how fast
/// the machine is. Default client-go timings: lease 15 s, renew deadline 10 s, retry 2 s; no jitter.
final class Election: Sendable {
    static let epoch = Date(timeIntervalSince1970: 1_795_557_053)
    let clock = TestClock()
    private let running = Locked<[LeaderElector]>([])

    /// An elector whose wall clock (written to the Lease) is `skew` seconds off.
    func elector(_ identity: String, api: any KubeAPI, skew: TimeInterval = 0) -> LeaderElector {
        let clock = self.clock
        return LeaderElector(
            api: api, configuration: .init(identity: identity), clock: clock,
            now: {
                let (seconds, attoseconds) = clock.now.offset.components
                return Self.epoch.addingTimeInterval(skew + Double(seconds) + Double(attoseconds) * 1e-18)
            },
            jitter: { 0 }, logger: testLogger)
    }

    /// Runs `electors` while `body` runs, then cancels them. They start one after the other, each once the one
    /// before made its first round: the first one leads.
    func running(_ electors: [LeaderElector], _ body: @escaping @Sendable () async throws -> Void) async throws {
        self.running.withLock { $0 = electors }
        try await withTimeout(.seconds(60)) {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (index, elector) in electors.enumerated() {
                    group.addTask { try await elector.run() }
                    #expect(await self.settle([elector], sleeping: index + 1))
                }
                try await body()
                group.cancelAll()
            }
        }
    }

    /// Runs `leader` (through `run`, which runs it) and, once it leads, `standby`; `body` may stop the leader
    /// with the function it is given (`true`: cancel it; `false`: wait for `run` to return after a graceful
    /// shutdown).
    func withLeader(
        _ leader: LeaderElector, run: @escaping @Sendable () async throws -> Void, standby: LeaderElector,
        standbyDelay: Duration = .zero,
        _ body: @escaping @Sendable (_ stop: @Sendable (_ cancel: Bool) async -> Void) async throws -> Void
    ) async throws {
        try await withTimeout(.seconds(60)) {
            try await withThrowingTaskGroup(of: Void.self) { group in
                let (stopped, stop) = AsyncStream.makeStream(of: Bool.self)
                let (done, finished) = AsyncStream.makeStream(of: Void.self)
                group.addTask {
                    try? await withThrowingTaskGroup(of: Void.self) { leaderGroup in
                        leaderGroup.addTask { try await run() }
                        for await cancel in stopped {
                            if cancel { leaderGroup.cancelAll() }
                            break
                        }
                        try await leaderGroup.waitForAll()
                    }
                    finished.yield()
                    finished.finish()
                }
                #expect(await self.settle([leader]))
                // Nobody wakes: the leader sleeps for the retry period.
                if standbyDelay > .zero { self.clock.advance(by: standbyDelay) }
                group.addTask { try await standby.run() }
                #expect(await self.settle([standby], sleeping: 2))
                try await body { cancel in
                    stop.yield(cancel)
                    stop.finish()
                    for await _ in done { break }
                }
                stop.finish()
                group.cancelAll()
            }
        }
    }

    /// Waits until each of `electors` made a round since `before` (or at all) and `sleeping` sleeps wait (by
    /// default one per elector).
    func settle(_ electors: [LeaderElector], after before: [Int]? = nil, sleeping: Int? = nil) async -> Bool {
        let before = before ?? electors.map { _ in 0 }
        let sleeping = sleeping ?? electors.count
        return await becomesTrue(within: .seconds(20)) {
            zip(electors, before).allSatisfy { $0.rounds > $1 } && self.clock.sleeperCount == sleeping
        }
    }

    /// Advances the clock and settles the electors that wake (by default those given to ``running(_:_:)``) with
    /// `sleeping` sleeps waiting after (by default one per woken elector).
    func step(by duration: Duration, waking electors: [LeaderElector]? = nil, sleeping: Int? = nil) async -> Bool {
        let electors = electors ?? self.running.withLock { $0 }
        let before = electors.map(\.rounds)
        self.clock.advance(by: duration)
        return await self.settle(electors, after: before, sleeping: sleeping)
    }
}
