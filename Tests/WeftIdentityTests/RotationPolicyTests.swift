import Foundation
import Testing
import WeftIdentity

@Suite struct RotationPolicyTests {
    static let notBefore = TestPKI.now
    static let notAfter = TestPKI.now.addingTimeInterval(24 * 3600)

    @Test(arguments: [
        (0.0, 12.0),
        (0.1, 14.4),
        (-0.1, 9.6),
        (0.5, 14.4),  // clamped to +10 %
        (-3.0, 9.6),  // clamped to -10 %
        (Double.nan, 12.0),
    ])
    func renewsAtAboutHalfTheLifetime(_ jitter: Double, _ hours: Double) {
        let at = RotationPolicy().renewalTime(notBefore: Self.notBefore, notAfter: Self.notAfter, jitter: jitter)
        #expect(abs(at.timeIntervalSince(Self.notBefore) - hours * 3600) < 0.001)
    }

    @Test func shouldRenewOnceTheRenewalTimeHasCome() throws {
        let schedule = RotationPolicy().schedule(notBefore: Self.notBefore, notAfter: Self.notAfter, jitter: 0)
        #expect(!schedule.shouldRenew(now: Self.notBefore.addingTimeInterval(12 * 3600 - 1)))
        #expect(schedule.shouldRenew(now: Self.notBefore.addingTimeInterval(12 * 3600)))
        #expect(schedule.shouldRenew(now: Self.notAfter.addingTimeInterval(10)))
        #expect(schedule.timeUntilRenewal(now: Self.notBefore) == 12 * 3600)
        #expect(schedule.timeUntilRenewal(now: Self.notAfter) == 0)
        #expect(!schedule.isExpired(now: Self.notAfter))
        #expect(schedule.isExpired(now: Self.notAfter.addingTimeInterval(1)))
        #expect(RotationPolicy().jitterRange == -0.1...0.1)
    }

    @Test func scheduleOfAnIssuedCertificate() throws {
        let ca = try TestPKI.authority(TestPKI.root().secret)
        let issued = try TestPKI.issue(ca)
        let schedule = RotationPolicy(renewalFraction: 0.5, maximumJitter: 0.1).schedule(for: issued, jitter: 0)
        // The lifetime runs from notBefore (now - 1 minute) to notAfter (now + 24 h).
        #expect(schedule.renewAt == issued.notBefore.addingTimeInterval((24 * 3600 + 60) / 2))
    }
}
