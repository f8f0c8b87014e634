/// Decides, per request, whether to retry after each try.
///
/// The driver sends the first try, reports each outcome with `tryFinished`, and either waits the returned
/// backoff and sends another try or ends the request. The machine checks, in order: the outcome matches
/// `retryOn`; the method is idempotent (or the policy allows non-idempotent retries, or the request never
/// reached the application: connect failure, refused stream); attempts remain; the cluster's retry budget
/// allows one more. The backoff is exponential with full jitter: uniform in
/// `0...min(backoffMax, backoffBase × 2^retries)`.
///
/// The driver counts the original request in the budget (`RetryBudgetTracker.recordRequest`); the machine
/// only spends retries. A value confined to one event loop.
public struct RetryStateMachine {
    /// What to do after a try.
    public enum Action: Sendable, Hashable {
        /// Send another try after this many nanoseconds.
        case retry(after: UInt64)
        /// The last try's outcome is the request's outcome.
        case done(DoneReason)
    }

    /// Why no further try is sent.
    public enum DoneReason: Sendable, Hashable {
        /// The route has no retry policy.
        case noPolicy
        /// The outcome is not one `retryOn` names (a success, or a failure not to retry).
        case notRetriable
        /// The method is not idempotent and the policy does not allow retrying it.
        case nonIdempotent
        /// Every allowed retry was used.
        case attemptsExhausted
        /// The cluster's retry budget refused.
        case budgetExhausted
    }

    /// The policy, if any.
    public let policy: CompiledRetryPolicy?
    /// Whether the request's method is idempotent.
    public let isIdempotent: Bool
    /// Retries granted so far.
    public private(set) var retries = 0
    /// The final decision, once made.
    public private(set) var outcome: DoneReason?

    /// A machine for one request with `method` under `policy` (nil: never retry).
    public init(policy: CompiledRetryPolicy?, method: String) {
        self.policy = policy
        self.isIdempotent = CompiledRetryPolicy.isIdempotent(method: method)
    }

    /// The per-try timeout to arm for each try, if any.
    public var perTryTimeoutNanos: UInt64? { self.policy?.perTryTimeoutNanos }

    /// A try ended with `outcome` at `now`: retry (spending from `budget`) or finish.
    public mutating func tryFinished<Random: RandomSource>(
        _ outcome: TryOutcome, now: UInt64, budget: inout RetryBudgetTracker, random: inout Random
    ) -> Action {
        if let done = self.outcome { return .done(done) }
        guard let policy = self.policy else { return self.finish(.noPolicy) }
        guard policy.conditions.matches(outcome) else { return self.finish(.notRetriable) }
        guard self.isIdempotent || policy.retryNonIdempotent || Self.neverReachedApplication(outcome) else {
            return self.finish(.nonIdempotent)
        }
        guard self.retries < policy.attempts else { return self.finish(.attemptsExhausted) }
        guard budget.tryRetry(now: now) else { return self.finish(.budgetExhausted) }
        let ceiling = Self.backoffCeiling(policy: policy, retries: self.retries)
        self.retries += 1
        let delay = ceiling == UInt64.max ? random.next() : random.next(below: ceiling + 1)
        return .retry(after: delay)
    }

    /// The upper bound of the jittered backoff before retry number `retries + 1`.
    public static func backoffCeiling(policy: CompiledRetryPolicy, retries: Int) -> UInt64 {
        let shift = min(max(retries, 0), 63)
        let (scaled, overflow) = policy.backoffBaseNanos.multipliedReportingOverflow(by: UInt64(1) << UInt64(shift))
        return overflow ? policy.backoffMaxNanos : min(scaled, policy.backoffMaxNanos)
    }

    private static func neverReachedApplication(_ outcome: TryOutcome) -> Bool {
        switch outcome {
        case .connectFailure, .refusedStream: true
        case .response, .reset, .perTryTimeout: false
        }
    }

    private mutating func finish(_ reason: DoneReason) -> Action {
        self.outcome = reason
        return .done(reason)
    }
}

@available(*, unavailable)
extension RetryStateMachine: Sendable {}
