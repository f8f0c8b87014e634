#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// When a workload renews its certificate: at about half its lifetime, moved by a jitter so that proxies
/// started together do not all renew at once.
///
/// Pure: the jitter is passed in (the proxy draws it, e.g. `Double.random(in: policy.jitterRange)`), and so is
/// the time.
public struct RotationPolicy: Hashable, Sendable {
    /// The fraction of the lifetime (`notBefore` to `notAfter`) after which to renew; 0.5 by default.
    public var renewalFraction: Double
    /// The largest jitter, as a fraction of the lifetime; 0.1 (±10 %) by default.
    public var maximumJitter: Double

    /// A policy renewing at `renewalFraction` of the lifetime, give or take `maximumJitter`.
    public init(renewalFraction: Double = 0.5, maximumJitter: Double = 0.1) {
        self.renewalFraction = renewalFraction
        self.maximumJitter = abs(maximumJitter)
    }

    /// The jitter values ``renewalTime(notBefore:notAfter:jitter:)`` uses unclamped: `-maximumJitter...maximumJitter`.
    public var jitterRange: ClosedRange<Double> { -maximumJitter...maximumJitter }

    /// The time to renew a certificate valid from `notBefore` to `notAfter`:
    /// `notBefore + lifetime × (renewalFraction + jitter)`, with `jitter` clamped to ``jitterRange`` and the result
    /// kept within `notBefore...notAfter`.
    public func renewalTime(notBefore: Date, notAfter: Date, jitter: Double) -> Date {
        let lifetime = max(0, notAfter.timeIntervalSince(notBefore))
        let clamped = jitter.isNaN ? 0 : min(max(jitter, -maximumJitter), maximumJitter)
        let fraction = min(max(renewalFraction + clamped, 0), 1)
        return notBefore.addingTimeInterval(lifetime * fraction)
    }

    /// The renewal schedule of an issued certificate.
    public func schedule(for certificate: IssuedCertificate, jitter: Double) -> RenewalSchedule {
        schedule(notBefore: certificate.notBefore, notAfter: certificate.notAfter, jitter: jitter)
    }

    /// The renewal schedule of a certificate valid from `notBefore` to `notAfter`.
    public func schedule(notBefore: Date, notAfter: Date, jitter: Double) -> RenewalSchedule {
        RenewalSchedule(
            notBefore: notBefore,
            notAfter: notAfter,
            renewAt: renewalTime(notBefore: notBefore, notAfter: notAfter, jitter: jitter)
        )
    }
}

/// When one certificate is due for renewal.
public struct RenewalSchedule: Hashable, Sendable {
    /// The certificate's `notBefore`.
    public var notBefore: Date
    /// The certificate's `notAfter`.
    public var notAfter: Date
    /// When to start renewing.
    public var renewAt: Date

    /// A schedule with explicit times.
    public init(notBefore: Date, notAfter: Date, renewAt: Date) {
        self.notBefore = notBefore
        self.notAfter = notAfter
        self.renewAt = renewAt
    }

    /// Whether the certificate should be renewed at `now` (the renewal time has come, or it has expired).
    public func shouldRenew(now: Date) -> Bool { now >= renewAt }

    /// Whether the certificate has expired at `now` (a renewal is then urgent: the proxy cannot prove its identity).
    public func isExpired(now: Date) -> Bool { now > notAfter }

    /// Seconds from `now` until the renewal is due; 0 when it is due already.
    public func timeUntilRenewal(now: Date) -> TimeInterval { max(0, renewAt.timeIntervalSince(now)) }
}
