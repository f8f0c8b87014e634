#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// How long a certificate is valid, turned into a `notBefore`/`notAfter` window at a given time (linkerd's
/// `Validity.Window(t)`): `notBefore` is back-dated by ``clockSkewAllowance`` so that a peer whose clock is a
/// little behind accepts the certificate at once.
public struct CertificateValidity: Hashable, Sendable {
    /// The default workload (X.509-SVID) lifetime: 24 hours.
    public static let defaultLeafLifetime: TimeInterval = 24 * 60 * 60
    /// The default lifetime of a generated root: 10 years (of 365 days).
    public static let defaultRootLifetime: TimeInterval = 10 * 365 * 24 * 60 * 60
    /// The default back-dating of `notBefore`: 1 minute.
    public static let defaultClockSkewAllowance: TimeInterval = 60

    /// Seconds from issuance (`now`) to `notAfter`.
    public var lifetime: TimeInterval
    /// Seconds `notBefore` lies before `now`.
    public var clockSkewAllowance: TimeInterval

    /// A validity of `lifetime` seconds after issuance, back-dated by `clockSkewAllowance`.
    public init(lifetime: TimeInterval, clockSkewAllowance: TimeInterval = Self.defaultClockSkewAllowance) {
        self.lifetime = lifetime
        self.clockSkewAllowance = clockSkewAllowance
    }

    /// The window for a certificate issued at `now`: `(now - clockSkewAllowance, now + lifetime)`.
    public func window(at now: Date) -> (notBefore: Date, notAfter: Date) {
        (now.addingTimeInterval(-clockSkewAllowance), now.addingTimeInterval(lifetime))
    }
}
