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

    /// Short client-go timings: lease 1 s, renew deadline 0.6 s, retry 0.2 s.
    static func configuration(_ identity: String) -> LeaderElector.Configuration {
        LeaderElector.Configuration(
            namespace: "weft-system", name: "weft-controller", identity: identity, leaseDuration: .seconds(1),
            renewDeadline: .milliseconds(600), retryPeriod: .milliseconds(200))
    }

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

    @Test("A lease expires leaseDurationSeconds after its renewTime")
    func expiry() {
        let spec = coordination.v1.LeaseSpec(
            holderIdentity: "other", leaseDurationSeconds: 15, renewTime: "2026-11-24T21:50:53.000000Z")
        let renewed = MicroTime.parse("2026-11-24T21:50:53.000000Z") ?? Date()
        #expect(!LeaderElector.hasExpired(spec, at: renewed.addingTimeInterval(14.9)))
        #expect(LeaderElector.hasExpired(spec, at: renewed.addingTimeInterval(15)))
        #expect(LeaderElector.hasExpired(coordination.v1.LeaseSpec(holderIdentity: "other"), at: renewed))
    }

    // MARK: - Through FakeAPIServer

    @Test("One of two electors leads; the other takes over when the leader is cancelled")
    func takeoverAfterCancellation() async throws {
        try await withFakeCluster { _, client in
            let first = LeaderElector(api: client, configuration: Self.configuration("first"), logger: testLogger)
            let second = LeaderElector(api: client, configuration: Self.configuration("second"), logger: testLogger)
            try await withTimeout(.seconds(30)) {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    try await withThrowingTaskGroup(of: Void.self) { firstGroup in
                        firstGroup.addTask { try await first.run() }
                        #expect(await becomesTrue { first.isLeader })
                        group.addTask { try await second.run() }
                        // Longer than the lease: the leader renews, the other waits.
                        try await Task.sleep(for: .milliseconds(1500))
                        #expect(first.isLeader)
                        #expect(!second.isLeader)
                        firstGroup.cancelAll()
                    }
                    #expect(!first.isLeader)
                    #expect(await becomesTrue(within: .seconds(10)) { second.isLeader })
                    let lease = try await client.get(Lease.self, namespace: "weft-system", name: "weft-controller")
                    #expect(lease.spec?.holderIdentity == "second")
                    #expect(lease.spec?.leaseTransitions == 1)
                    group.cancelAll()
                }
            }
        }
    }

    @Test("The Lease looks like client-go's, and renewTime moves while leading")
    func leaseFields() async throws {
        try await withFakeCluster { _, client in
            let elector = LeaderElector(api: client, configuration: Self.configuration("me"), logger: testLogger)
            try await withTimeout(.seconds(30)) {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await elector.run() }
                    #expect(await becomesTrue { elector.isLeader })
                    let first = try await client.get(Lease.self, namespace: "weft-system", name: "weft-controller")
                    let spec = try #require(first.spec)
                    #expect(spec.holderIdentity == "me")
                    #expect(spec.leaseDurationSeconds == 1)
                    #expect(spec.leaseTransitions == 0)
                    #expect(try Self.microTime.wholeMatch(in: spec.acquireTime ?? "") != nil)
                    #expect(try Self.microTime.wholeMatch(in: spec.renewTime ?? "") != nil)
                    #expect(
                        await becomesTrue {
                            let lease = try? await client.get(
                                Lease.self, namespace: "weft-system", name: "weft-controller")
                            return lease?.spec?.renewTime != spec.renewTime
                        })
                    let renewed = try await client.get(Lease.self, namespace: "weft-system", name: "weft-controller")
                    #expect(renewed.spec?.acquireTime == spec.acquireTime)
                    #expect(renewed.spec?.leaseTransitions == 0)
                    #expect(renewed.spec?.holderIdentity == "me")
                    group.cancelAll()
                }
            }
        }
    }

    @Test("Graceful shutdown releases the Lease, and the next elector takes it at once")
    func releaseOnGracefulShutdown() async throws {
        try await withFakeCluster { _, client in
            let first = LeaderElector(api: client, configuration: Self.configuration("first"), logger: testLogger)
            try await withTimeout(.seconds(30)) {
                let services = ServiceGroup(
                    configuration: .init(services: [first], logger: testLogger))
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await services.run() }
                    #expect(await becomesTrue { first.isLeader })
                    await services.triggerGracefulShutdown()
                    try await group.waitForAll()
                }
            }
            #expect(!first.isLeader)
            let released = try await client.get(Lease.self, namespace: "weft-system", name: "weft-controller")
            #expect(released.spec?.holderIdentity ?? "" == "")
            #expect(released.spec?.leaseDurationSeconds == 1)
            #expect(released.spec?.leaseTransitions == 0)

            // A lease duration far longer than the test: only the release lets the next one in.
            var slow = Self.configuration("second")
            slow.leaseDuration = .seconds(3600)
            let second = LeaderElector(api: client, configuration: slow, logger: testLogger)
            try await withTimeout(.seconds(30)) {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await second.run() }
                    #expect(await becomesTrue { second.isLeader })
                    // Read while it leads: a cancelled elector may still manage to release.
                    let taken = try await client.get(Lease.self, namespace: "weft-system", name: "weft-controller")
                    #expect(taken.spec?.holderIdentity == "second")
                    #expect(taken.spec?.leaseTransitions == 1)
                    #expect(taken.spec?.leaseDurationSeconds == 3600)
                    group.cancelAll()
                }
            }
        }
    }

    @Test("A valid lease of another holder is respected; an expired one is taken over")
    func respectsOtherHolder() async throws {
        try await withFakeCluster { _, client in
            var lease = Lease.new(namespace: "weft-system", name: "weft-controller")
            lease.spec = coordination.v1.LeaseSpec(
                holderIdentity: "other", leaseDurationSeconds: 3600, acquireTime: MicroTime.format(Date()),
                renewTime: MicroTime.format(Date()), leaseTransitions: 4)
            lease = try await client.create(lease)
            let elector = LeaderElector(api: client, configuration: Self.configuration("me"), logger: testLogger)
            try await withTimeout(.seconds(30)) {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await elector.run() }
                    try await Task.sleep(for: .milliseconds(1200))
                    #expect(!elector.isLeader)
                    // The holder stops renewing: its last renew is now two hours old.
                    var stale = try await client.get(Lease.self, namespace: "weft-system", name: "weft-controller")
                    stale.spec?.renewTime = MicroTime.format(Date().addingTimeInterval(-7200))
                    _ = try await client.update(stale)
                    #expect(await becomesTrue { elector.isLeader })
                    let taken = try await client.get(Lease.self, namespace: "weft-system", name: "weft-controller")
                    #expect(taken.spec?.holderIdentity == "me")
                    #expect(taken.spec?.leaseTransitions == 5)
                    group.cancelAll()
                }
            }
        }
    }

    @Test("Leadership is lost when no renew succeeds within renewDeadline, and regained after")
    func lostWhenRenewsFail() async throws {
        try await withFakeCluster { fake, client in
            let elector = LeaderElector(api: client, configuration: Self.configuration("me"), logger: testLogger)
            try await withTimeout(.seconds(30)) {
                await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await elector.run() }
                    #expect(await becomesTrue { elector.isLeader })
                    // Renews every 0.2 s fail; after 0.6 s without one the elector steps down, then the
                    // remaining failures delay its comeback.
                    fake.failNext(5, status: 500, method: "PUT", pathContains: "/leases/")
                    #expect(await becomesTrue { !elector.isLeader })
                    #expect(await becomesTrue { elector.isLeader })
                    #expect(fake.count(method: "PUT", pathContains: "/leases/") >= 6)
                    group.cancelAll()
                }
            }
        }
    }

    @Test("leadershipChanges reports the current state, then each change, and ends with run()")
    func leadershipChanges() async throws {
        try await withFakeCluster { _, client in
            let elector = LeaderElector(api: client, configuration: Self.configuration("me"), logger: testLogger)
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
