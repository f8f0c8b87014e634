import ProxyConfig

/// Passive health checking for one cluster's endpoints (Envoy's consecutive-error outlier detection).
///
/// Each endpoint counts consecutive 5xx responses and consecutive gateway errors (502, 503, 504 and connect
/// failures). Reaching a threshold ejects it for `baseEjectionTime × ejections` (capped at
/// `maxEjectionNanos`), unless that would eject more than `maxEjectionPercent` of the endpoints (one may
/// always be ejected when the percent is above 0, as in Envoy). A success resets both counters.
/// `tick(now:)`, called every `interval`, returns the endpoints whose time has passed and decrements the
/// ejection multiplier of endpoints that stayed healthy for an interval.
///
/// Endpoints are the indices of the cluster's endpoint list. A value confined to one event loop.
public struct OutlierDetector {
    /// What a request to an endpoint ended with.
    public enum Outcome: Sendable, Hashable {
        /// A response with this status.
        case status(Int)
        /// The connection could not be established.
        case connectFailure
    }

    /// An ejection decided by `record`.
    public struct Ejection: Sendable, Hashable {
        /// The endpoint index.
        public var endpoint: Int
        /// When it returns (monotonic nanoseconds).
        public var until: UInt64
        /// How many times it has been ejected (the multiplier of the base time).
        public var ejections: Int

        /// Creates an ejection.
        public init(endpoint: Int, until: UInt64, ejections: Int) {
            self.endpoint = endpoint
            self.until = until
            self.ejections = ejections
        }
    }

    /// The longest ejection (or the base ejection time, when that is longer).
    public static let maxEjectionNanos: UInt64 = 300 * Nanoseconds.perSecond
    private static let defaultIntervalNanos: UInt64 = 10 * Nanoseconds.perSecond

    private struct State {
        var consecutive5xx = 0
        var consecutiveGateway = 0
        var ejections = 0
        /// Set while ejected.
        var ejectedUntil: UInt64?
        /// When the multiplier last changed or the endpoint returned.
        var lastChange: UInt64 = 0
    }

    /// The config.
    public let config: OutlierDetection
    private let baseEjectionNanos: UInt64
    private let intervalNanos: UInt64
    private var states: [State]
    /// Endpoints ejected now.
    public private(set) var ejectedCount = 0

    /// A detector for `endpointCount` endpoints.
    public init(config: OutlierDetection, endpointCount: Int) {
        self.config = config
        self.baseEjectionNanos = Nanoseconds.fromMilliseconds(config.baseEjectionTimeMs)
        let interval = Nanoseconds.fromMilliseconds(config.intervalMs)
        self.intervalNanos = interval > 0 ? interval : Self.defaultIntervalNanos
        self.states = Array(repeating: State(), count: max(0, endpointCount))
    }

    /// Counts `outcome` for `endpoint` at `now`; returns the ejection when this one ejects it.
    /// Outcomes of ejected endpoints (reached in panic mode) are not counted.
    public mutating func record(_ outcome: Outcome, endpoint: Int, now: UInt64) -> Ejection? {
        guard self.states.indices.contains(endpoint), self.states[endpoint].ejectedUntil == nil else { return nil }
        switch outcome {
        case .status(let status) where (500...599).contains(status):
            self.states[endpoint].consecutive5xx += 1
            if (502...504).contains(status) {
                self.states[endpoint].consecutiveGateway += 1
            } else {
                self.states[endpoint].consecutiveGateway = 0
            }
        case .status:
            self.states[endpoint].consecutive5xx = 0
            self.states[endpoint].consecutiveGateway = 0
            return nil
        case .connectFailure:
            self.states[endpoint].consecutive5xx += 1
            self.states[endpoint].consecutiveGateway += 1
        }
        let state = self.states[endpoint]
        let by5xx = self.config.consecutive5xxErrors > 0 && state.consecutive5xx >= self.config.consecutive5xxErrors
        let byGateway =
            self.config.consecutiveGatewayErrors > 0 && state.consecutiveGateway >= self.config.consecutiveGatewayErrors
        guard by5xx || byGateway, self.mayEjectAnother() else { return nil }
        return self.eject(endpoint, now: now)
    }

    /// Returns the endpoints whose ejection ended by `now`, ascending; decays the multiplier of endpoints
    /// healthy for a whole interval.
    public mutating func tick(now: UInt64) -> [Int] {
        var returned: [Int] = []
        for index in self.states.indices {
            if let until = self.states[index].ejectedUntil {
                guard now >= until else { continue }
                self.states[index].ejectedUntil = nil
                self.states[index].lastChange = now
                self.ejectedCount -= 1
                returned.append(index)
            } else if self.states[index].ejections > 0,
                now >= Nanoseconds.saturatingAdd(self.states[index].lastChange, self.intervalNanos)
            {
                self.states[index].ejections -= 1
                self.states[index].lastChange = now
            }
        }
        return returned
    }

    /// Whether `endpoint` is ejected at `now`.
    public func isEjected(_ endpoint: Int, now: UInt64) -> Bool {
        guard self.states.indices.contains(endpoint), let until = self.states[endpoint].ejectedUntil else {
            return false
        }
        return now < until
    }

    /// How many times `endpoint` has been ejected, after decay (the multiplier of its next ejection minus 1).
    public func ejections(_ endpoint: Int) -> Int {
        self.states.indices.contains(endpoint) ? self.states[endpoint].ejections : 0
    }

    private func mayEjectAnother() -> Bool {
        let percent = self.config.maxEjectionPercent
        guard percent > 0 else { return false }
        if self.ejectedCount == 0 { return true }
        return (self.ejectedCount + 1) * 100 <= percent * self.states.count
    }

    private mutating func eject(_ endpoint: Int, now: UInt64) -> Ejection {
        self.states[endpoint].ejections += 1
        let ejections = self.states[endpoint].ejections
        let cap = max(Self.maxEjectionNanos, self.baseEjectionNanos)
        let duration = min(Nanoseconds.saturatingMultiply(self.baseEjectionNanos, UInt64(ejections)), cap)
        let until = Nanoseconds.saturatingAdd(now, duration)
        self.states[endpoint].ejectedUntil = until
        self.states[endpoint].consecutive5xx = 0
        self.states[endpoint].consecutiveGateway = 0
        self.states[endpoint].lastChange = now
        self.ejectedCount += 1
        return Ejection(endpoint: endpoint, until: until, ejections: ejections)
    }
}

@available(*, unavailable)
extension OutlierDetector: Sendable {}
