import ProxyConfig

/// A Linkerd-style retry budget for one cluster: retries are allowed while
/// `retries ≤ percent% × requests + minRetriesPerSecond × 10 s` over a 10 second sliding window.
///
/// The window is ten one-second buckets with running totals, so `recordRequest` and `tryRetry` are O(1)
/// and never allocate. Named `RetryBudgetTracker` so that it does not clash with the config type
/// `ProxyConfig.RetryBudget`. A value confined to one event loop.
public struct RetryBudgetTracker {
    /// The length of the sliding window.
    public static let windowNanos: UInt64 = 10 * Nanoseconds.perSecond
    private static let bucketCount = 10
    private static let bucketNanos = Nanoseconds.perSecond

    /// Retries may add this percentage of the requests in the window.
    public let percent: Double
    /// Retries always allowed per second, whatever the request rate.
    public let minRetriesPerSecond: Int

    private var requests: [UInt64]
    private var retries: [UInt64]
    /// The requests in the window.
    public private(set) var requestsInWindow: UInt64 = 0
    /// The retries in the window.
    public private(set) var retriesInWindow: UInt64 = 0
    private var currentSecond: UInt64 = 0
    private var started = false

    /// A tracker for `budget`.
    public init(_ budget: RetryBudget) {
        self.percent = max(0, budget.percent)
        self.minRetriesPerSecond = max(0, budget.minRetriesPerSecond)
        self.requests = Array(repeating: 0, count: Self.bucketCount)
        self.retries = Array(repeating: 0, count: Self.bucketCount)
    }

    /// The retries the window allows at its current totals.
    public var allowedRetries: Double {
        self.percent / 100 * Double(self.requestsInWindow)
            + Double(self.minRetriesPerSecond) * Double(Self.windowNanos / Nanoseconds.perSecond)
    }

    /// Counts one original request (not a retry) at `now` (monotonic nanoseconds).
    public mutating func recordRequest(now: UInt64) {
        let bucket = self.advance(to: now)
        self.requests[bucket] += 1
        self.requestsInWindow += 1
    }

    /// Whether a retry may be sent at `now`; when it may, the retry is counted.
    public mutating func tryRetry(now: UInt64) -> Bool {
        let bucket = self.advance(to: now)
        guard Double(self.retriesInWindow + 1) <= self.allowedRetries else { return false }
        self.retries[bucket] += 1
        self.retriesInWindow += 1
        return true
    }

    /// Expires buckets older than the window and returns the bucket of `now`. Time going backwards counts
    /// in the newest bucket.
    private mutating func advance(to now: UInt64) -> Int {
        let second = now / Self.bucketNanos
        if !self.started {
            self.started = true
            self.currentSecond = second
        } else if second > self.currentSecond {
            let steps = min(second - self.currentSecond, UInt64(Self.bucketCount))
            for step in 1...steps {
                let index = Int((self.currentSecond + step) % UInt64(Self.bucketCount))
                self.requestsInWindow -= self.requests[index]
                self.retriesInWindow -= self.retries[index]
                self.requests[index] = 0
                self.retries[index] = 0
            }
            self.currentSecond = second
        }
        return Int(self.currentSecond % UInt64(Self.bucketCount))
    }
}

@available(*, unavailable)
extension RetryBudgetTracker: Sendable {}
