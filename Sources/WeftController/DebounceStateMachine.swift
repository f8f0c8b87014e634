/// When to compile after changes arrive: once they have been quiet for `quiet`, but never later than `maxDelay`
/// after the first of them. A pure state machine; the reconciler drives it with the time.
struct DebounceStateMachine {
    enum Action: Equatable {
        /// Nothing pending.
        case idle
        /// Sleep until this instant, then ask again.
        case wait(until: ContinuousClock.Instant)
        /// Compile now.
        case compile
    }

    let quiet: Duration
    let maxDelay: Duration
    private var firstChange: ContinuousClock.Instant?
    private var lastChange: ContinuousClock.Instant?

    init(quiet: Duration = .milliseconds(50), maxDelay: Duration = .seconds(1)) {
        self.quiet = quiet
        self.maxDelay = maxDelay
    }

    /// A change arrived at `now`.
    mutating func changed(at now: ContinuousClock.Instant) {
        if self.firstChange == nil { self.firstChange = now }
        self.lastChange = now
    }

    /// What to do at `now`.
    mutating func poll(at now: ContinuousClock.Instant) -> Action {
        guard let first = self.firstChange, let last = self.lastChange else { return .idle }
        let quietUntil = last.advanced(by: self.quiet)
        let deadline = first.advanced(by: self.maxDelay)
        if now >= quietUntil || now >= deadline {
            self.firstChange = nil
            self.lastChange = nil
            return .compile
        }
        return .wait(until: min(quietUntil, deadline))
    }
}
