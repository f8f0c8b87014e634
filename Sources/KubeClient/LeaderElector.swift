public import Foundation
import KubeModel
public import Logging
public import ServiceLifecycle
import Synchronization

/// Leader election on a `coordination.k8s.io/v1` Lease, with client-go's algorithm and timings.
///
/// - Acquire: read the Lease; create it if absent; if another holder's record changed less than its
///   `leaseDurationSeconds` ago, wait `retryPeriod`; otherwise take it with an update that carries the read
///   `resourceVersion` (a 409 means someone else was faster: read again). As in client-go, "ago" is measured
///   on this replica's own (injected) clock from when it last saw the record change, never by comparing the
///   holder's `renewTime` with the local wall clock: skewed clocks between replicas cannot cause an early
///   takeover or two leaders.
/// - Lead: renew every `retryPeriod`. When no renew succeeded for `renewDeadline` (or another holder shows up),
///   leadership is lost and the elector campaigns again.
/// - On shutdown while leading, graceful or by cancellation: stop leading, then release the Lease (holder
///   cleared, `leaseDurationSeconds` 1) through ``KubeAPI/ignoringCancellation(timeout:)`` within
///   `renewDeadline`, so that a standby takes over at its next retry rather than after the lease duration
///   (client-go's `ReleaseOnCancel`).
///
/// Observe ``isLeader`` or ``leadershipChanges``; leader-only work starts on `true` and stops on `false`.
public final class LeaderElector: Service {
    public struct Configuration: Sendable, Hashable {
        public var namespace: String
        public var name: String
        /// Unique per replica: the default is the hostname, `_` and a random UUID.
        public var identity: String
        /// How long a Lease stays valid after its last renew (written to the Lease, in whole seconds).
        public var leaseDuration: Duration
        /// How long the leader keeps trying to renew before it gives up leadership; below `leaseDuration`.
        /// Also the bound of the release on shutdown.
        public var renewDeadline: Duration
        /// The wait between attempts to acquire or renew.
        public var retryPeriod: Duration

        public init(
            namespace: String = "weft-system", name: String = "weft-controller",
            identity: String = LeaderElector.defaultIdentity(), leaseDuration: Duration = .seconds(15),
            renewDeadline: Duration = .seconds(10), retryPeriod: Duration = .seconds(2)
        ) {
            self.namespace = namespace
            self.name = name
            self.identity = identity
            self.leaseDuration = leaseDuration
            self.renewDeadline = renewDeadline
            self.retryPeriod = retryPeriod
        }
    }

    /// `hostname_UUID`.
    public static func defaultIdentity() -> String {
        "\(ProcessInfo.processInfo.hostName)_\(UUID().uuidString.lowercased())"
    }

    public let configuration: Configuration
    private let api: any KubeAPI
    private let clock: ElapsedClock
    private let now: @Sendable () -> Date
    private let jitter: @Sendable () -> Double
    private let logger: Logger
    private let state = Mutex(State())

    /// The Lease record as last seen, and when (on the injected clock) it was first seen that way.
    struct Observation: Sendable, Hashable {
        var spec: coordination.v1.LeaseSpec
        var at: Duration
    }

    private struct State {
        var isLeader = false
        /// The Lease as last written by this elector while leading.
        var lease: coordination.v1.Lease?
        var observation: Observation?
        /// Completed acquire/renew rounds (tests step the injected clock by them).
        var rounds = 0
        var nextSubscriber = 0
        var subscribers: [Int: AsyncStream<Bool>.Continuation] = [:]
    }

    /// - Parameters:
    ///   - clock: Drives the retry, renew and expiry timings.
    ///   - now: The wall-clock time written to the Lease (`acquireTime`, `renewTime`); never used to judge expiry.
    ///   - jitter: A value in `0..<1`; the wait between acquire attempts is `retryPeriod × (1 + 0.2 × jitter)`.
    public init(
        api: any KubeAPI, configuration: Configuration = .init(), clock: any Clock<Duration> = ContinuousClock(),
        now: @escaping @Sendable () -> Date = { Date() },
        jitter: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }, logger: Logger = .current
    ) {
        self.api = api
        self.configuration = configuration
        self.clock = ElapsedClock(clock)
        self.now = now
        self.jitter = jitter
        var logger = logger
        logger[metadataKey: "k8s.namespace"] = "\(configuration.namespace)"
        logger[metadataKey: "k8s.name"] = "\(configuration.name)"
        logger[metadataKey: "leader.identity"] = "\(configuration.identity)"
        self.logger = logger
    }

    /// Whether this replica holds the Lease.
    public var isLeader: Bool { self.state.withLock { $0.isLeader } }

    /// The holder of the Lease as this replica last saw it (empty when released), nil before the first read.
    public var observedHolder: String? { self.state.withLock { $0.observation.map { $0.spec.holderIdentity ?? "" } } }

    /// Completed acquire and renew rounds.
    var rounds: Int { self.state.withLock { $0.rounds } }

    /// The current leadership, then every change. Bounded: a slow reader sees only the newest value. Ends
    /// when ``run()`` returns.
    public var leadershipChanges: AsyncStream<Bool> {
        let (stream, continuation) = AsyncStream.makeStream(of: Bool.self, bufferingPolicy: .bufferingNewest(1))
        let id = self.state.withLock { state in
            state.nextSubscriber += 1
            return state.nextSubscriber
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.subscribers.removeValue(forKey: id) }
        }
        self.state.withLock { state in
            state.subscribers[id] = continuation
            continuation.yield(state.isLeader)
        }
        return stream
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown { await self.campaign() }
        let lease = self.state.withLock { $0.lease }
        self.setLeader(false, lease: nil)
        if let lease { await self.release(lease) }
        let subscribers = self.state.withLock { state in
            defer { state.subscribers = [:] }
            return Array(state.subscribers.values)
        }
        for subscriber in subscribers { subscriber.finish() }
    }

    // MARK: - Campaign

    private enum Attempt {
        /// This replica holds the Lease, as written.
        case held(coordination.v1.Lease)
        /// Another replica holds a valid Lease.
        case heldByOther(String)
        /// A write lost a race: read again now.
        case conflict
    }

    /// Acquires, leads until the lease is lost, and starts over; returns on cancellation (still leading, if
    /// it was: `run` releases).
    private func campaign() async {
        while !Task.isCancelled {
            guard let lease = await self.acquire() else { return }
            self.setLeader(true, lease: lease)
            self.logger.info("Became leader")
            await self.lead()
            if Task.isCancelled { return }
            self.setLeader(false, lease: nil)
            self.logger.info("Lost leadership")
        }
    }

    private func acquire() async -> coordination.v1.Lease? {
        var lastHolder: String?
        var conflicts = 0
        while !Task.isCancelled {
            do {
                let attempt = try await self.tryAcquireOrRenew()
                self.completedRound()
                switch attempt {
                case .held(let lease): return lease
                case .conflict:
                    // Someone else wrote the Lease meanwhile: read it again at once, but not forever.
                    conflicts += 1
                    if conflicts < 3 { continue }
                case .heldByOther(let holder):
                    if holder != lastHolder {
                        self.logger.debug("Lease held by another replica", metadata: ["leader.holder": "\(holder)"])
                        lastHolder = holder
                    }
                }
            } catch {
                self.completedRound()
                if Task.isCancelled { return nil }
                self.logger.info("Acquiring the lease failed", metadata: ["error": "\(error)"])
            }
            conflicts = 0
            let jitter = self.configuration.retryPeriod * (0.2 * min(max(self.jitter(), 0), 1))
            try? await self.clock.sleep(for: self.configuration.retryPeriod + jitter)
        }
        return nil
    }

    /// Renews every `retryPeriod`; returns when no renew succeeded for `renewDeadline`, when another
    /// holder shows up, or on cancellation.
    private func lead() async {
        var lastRenew = self.clock.now
        while !Task.isCancelled {
            do {
                try await self.clock.sleep(for: self.configuration.retryPeriod)
            } catch {
                return
            }
            let attemptStart = self.clock.now
            let deadline = lastRenew + self.configuration.renewDeadline
            guard attemptStart < deadline else { return }
            do {
                let attempt = try await withDeadline(deadline, clock: self.clock) {
                    try await self.tryAcquireOrRenew()
                }
                self.completedRound()
                switch attempt {
                case .held(let lease):
                    lastRenew = attemptStart
                    self.state.withLock { $0.lease = lease }
                case .heldByOther(let holder):
                    self.logger.info("Another replica took the lease", metadata: ["leader.holder": "\(holder)"])
                    return
                case .conflict:
                    continue
                }
            } catch {
                self.completedRound()
                if Task.isCancelled { return }
                self.logger.info("Renewing the lease failed", metadata: ["error": "\(error)"])
            }
        }
    }

    /// One round of client-go's `tryAcquireOrRenew`: read, then create, take over or renew.
    private func tryAcquireOrRenew() async throws -> Attempt {
        let now = self.now()
        let identity = self.configuration.identity
        let existing: coordination.v1.Lease
        do {
            existing = try await self.api.get(
                coordination.v1.Lease.self, namespace: self.configuration.namespace, name: self.configuration.name)
        } catch let error as KubeClientError where error.isNotFound {
            var lease = coordination.v1.Lease.new(
                namespace: self.configuration.namespace,
                name: self.configuration.name)
            lease.spec = coordination.v1.LeaseSpec(
                holderIdentity: identity, leaseDurationSeconds: self.leaseDurationSeconds,
                acquireTime: MicroTime.format(now), renewTime: MicroTime.format(now), leaseTransitions: 0)
            do {
                return .held(self.observeWritten(try await self.api.create(lease)))
            } catch let error as KubeClientError where error.isConflict {
                return .conflict
            }
        }
        var spec = existing.spec ?? coordination.v1.LeaseSpec()
        let observation = self.observe(spec)
        let holder = spec.holderIdentity ?? ""
        if holder != identity && Self.isHeld(observation, now: self.clock.now) {
            return .heldByOther(holder)
        }
        if holder != identity {
            spec.acquireTime = MicroTime.format(now)
            spec.leaseTransitions = (spec.leaseTransitions ?? 0) + 1
        }
        spec.holderIdentity = identity
        spec.leaseDurationSeconds = self.leaseDurationSeconds
        spec.renewTime = MicroTime.format(now)
        var updated = existing
        updated.spec = spec
        do {
            return .held(self.observeWritten(try await self.api.update(updated)))
        } catch let error as KubeClientError where error.isConflict {
            return .conflict
        }
    }

    /// Records `spec` as seen now unless it is the record seen before (client-go's `observedRecord` and
    /// `observedTime`); answers the observation in force.
    private func observe(_ spec: coordination.v1.LeaseSpec) -> Observation {
        let now = self.clock.now
        return self.state.withLock { state in
            if let observation = state.observation, observation.spec == spec { return observation }
            let observation = Observation(spec: spec, at: now)
            state.observation = observation
            return observation
        }
    }

    private func observeWritten(_ lease: coordination.v1.Lease) -> coordination.v1.Lease {
        _ = self.observe(lease.spec ?? coordination.v1.LeaseSpec())
        return lease
    }

    private func completedRound() {
        self.state.withLock { $0.rounds += 1 }
    }

    /// Whether the observed record names a holder whose lease runs: it was seen (changed) less than its
    /// `leaseDurationSeconds` ago on this replica's clock. A released Lease (no holder) is free.
    static func isHeld(_ observation: Observation, now: Duration) -> Bool {
        guard let holder = observation.spec.holderIdentity, !holder.isEmpty else { return false }
        let duration = Duration.seconds(observation.spec.leaseDurationSeconds ?? 0)
        return observation.at + duration > now
    }

    /// Gives the Lease up, as client-go's `release`: holder cleared, duration 1 s, times set to now. Runs
    /// even when this task was cancelled, each request within `renewDeadline`.
    private func release(_ lease: coordination.v1.Lease) async {
        let api = self.api.ignoringCancellation(timeout: self.configuration.renewDeadline)
        do {
            do {
                _ = try await api.update(self.released(lease))
            } catch let error as KubeClientError where error.isConflict {
                // A renew that was cut short may have landed: release the current Lease if it is still ours.
                let current = try await api.get(
                    coordination.v1.Lease.self, namespace: self.configuration.namespace, name: self.configuration.name)
                guard current.spec?.holderIdentity == self.configuration.identity else { return }
                _ = try await api.update(self.released(current))
            }
            self.logger.info("Released the lease")
        } catch {
            self.logger.warning("Releasing the lease failed", metadata: ["error": "\(error)"])
        }
    }

    private func released(_ lease: coordination.v1.Lease) -> coordination.v1.Lease {
        var released = lease
        var spec = lease.spec ?? coordination.v1.LeaseSpec()
        let now = MicroTime.format(self.now())
        spec.holderIdentity = ""
        spec.leaseDurationSeconds = 1
        spec.acquireTime = now
        spec.renewTime = now
        released.spec = spec
        return released
    }

    private var leaseDurationSeconds: Int32 {
        Int32(max(1, (self.configuration.leaseDuration / .seconds(1)).rounded(.up)))
    }

    private func setLeader(_ isLeader: Bool, lease: coordination.v1.Lease?) {
        self.state.withLock { state in
            state.lease = lease
            guard state.isLeader != isLeader else { return }
            state.isLeader = isLeader
            for subscriber in state.subscribers.values { subscriber.yield(isLeader) }
        }
    }
}

// MARK: - MicroTime

/// `metav1.MicroTime`: RFC 3339 in UTC with six fractional digits, `2026-11-24T21:50:53.123456Z`.
enum MicroTime {
    static func format(_ date: Date) -> String {
        let micros = Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
        let (seconds, fraction) = Self.floorDivision(micros, 1_000_000)
        let (days, secondOfDay) = Self.floorDivision(seconds, 86_400)
        let (year, month, day) = Self.civil(fromDays: days)
        return "\(Self.pad(year, 4))-\(Self.pad(month, 2))-\(Self.pad(day, 2))T"
            + "\(Self.pad(secondOfDay / 3600, 2)):\(Self.pad(secondOfDay / 60 % 60, 2)):\(Self.pad(secondOfDay % 60, 2))"
            + ".\(Self.pad(fraction, 6))Z"
    }

    /// Parses RFC 3339 (`Z` or `±hh:mm`, any number of fractional digits).
    static func parse(_ text: String) -> Date? {
        let chars = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int64? {
            guard range.upperBound <= chars.count, !range.isEmpty else { return nil }
            var value: Int64 = 0
            for index in range {
                guard chars[index] >= 0x30 && chars[index] <= 0x39 else { return nil }
                value = value * 10 + Int64(chars[index] - 0x30)
            }
            return value
        }
        guard chars.count >= 20, chars[4] == 0x2D, chars[7] == 0x2D, chars[10] == 0x54 || chars[10] == 0x74,
            chars[13] == 0x3A, chars[16] == 0x3A,
            let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
            let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19),
            (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var index = 19
        var fraction = 0.0
        if chars[index] == 0x2E {
            var scale = 0.1
            index += 1
            let start = index
            while index < chars.count, chars[index] >= 0x30 && chars[index] <= 0x39 {
                fraction += Double(chars[index] - 0x30) * scale
                scale /= 10
                index += 1
            }
            guard index > start else { return nil }
        }
        var offset: Int64 = 0
        switch chars.count - index {
        case 1 where chars[index] == 0x5A || chars[index] == 0x7A: break
        case 6 where (chars[index] == 0x2B || chars[index] == 0x2D) && chars[index + 3] == 0x3A:
            guard let hours = number(index + 1..<index + 3), let minutes = number(index + 4..<index + 6) else {
                return nil
            }
            offset = (hours * 60 + minutes) * 60 * (chars[index] == 0x2D ? -1 : 1)
        default: return nil
        }
        let days = Self.days(fromCivil: year, month, day)
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset
        return Date(timeIntervalSince1970: Double(seconds) + fraction)
    }

    private static func pad(_ value: Int64, _ width: Int) -> String {
        let digits = String(value)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }

    private static func floorDivision(_ value: Int64, _ divisor: Int64) -> (Int64, Int64) {
        let quotient = value >= 0 ? value / divisor : -((-value + divisor - 1) / divisor)
        return (quotient, value - quotient * divisor)
    }

    /// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar (H. Hinnant's algorithm).
    private static func civil(fromDays days: Int64) -> (Int64, Int64, Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    private static func days(fromCivil year: Int64, _ month: Int64, _ day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }
}
