/// Watches a request body for stalls (`ProxyLimits.bodyTimeout`) without reading a clock per body part: a part
/// counts as progress, and the one timer of the request checks at each firing whether any came since the last.
/// A stall is reported after between one and two timeouts of silence. Time the proxy itself holds reads back
/// (the upstream is not writable or not connected yet) is not the client's stall.
struct BodyStallStateMachine: Sendable, Hashable {
    enum Action: Sendable, Hashable {
        case none
        /// Schedule the timer (`bodyTimeout` from now).
        case arm
        /// No progress for a whole timeout while the proxy wanted more: abort the request.
        case stalled
    }

    private var progress = 0
    private var seen = 0
    private var armed = false

    /// A body part (or any request bytes) arrived.
    mutating func bodyRead() {
        self.progress &+= 1
    }

    /// At the end of a read: `waiting` when the request body is not complete yet. Arms the timer once.
    mutating func readComplete(waiting: Bool) -> Action {
        guard waiting, !self.armed else {
            return .none
        }
        self.armed = true
        self.seen = self.progress
        return .arm
    }

    /// The timer fired. `waiting`: the body is still incomplete; `held`: the proxy holds reads back.
    mutating func timerFired(waiting: Bool, held: Bool) -> Action {
        guard waiting else {
            self.armed = false
            return .none
        }
        if held || self.progress != self.seen {
            self.seen = self.progress
            return .arm
        }
        self.armed = false
        return .stalled
    }

    /// The request is over (or a new one starts): the next body is watched afresh.
    mutating func reset() {
        self.armed = false
        self.seen = self.progress
    }
}
