import NIOCore
import NIOHTTP1

/// The request parts a `ProxyServerHandler` holds, and their share of the process-wide buffer budget
/// (`OverloadManager`): `pending`, the parts waiting for an upstream stream, and `retained`, every part of the
/// request kept while a retry may still resend it (up to `ProxyLimits.retryBufferBytes`).
struct RequestBuffers {
    /// What became of a part offered for retries.
    enum Retention: Equatable {
        /// Kept (or nothing is kept for this request).
        case kept
        /// Past the retry buffer: the request streams and is not retried.
        case tooLarge
        /// The process holds too much already: the request streams and is not retried.
        case overloaded
    }

    /// The request's parts kept for retries; nil when no retry is possible any more.
    private(set) var retained: [HTTPClientRequestPart]?
    private var retainedBytes = 0
    private var retainedReservation = BufferReservation()
    /// The parts waiting for an upstream.
    private(set) var pending: [HTTPClientRequestPart] = []
    private var pendingReservation = BufferReservation()

    /// A new request that may be retried: its parts are kept from now on.
    mutating func retainForRetries() {
        self.retained = []
        self.retainedBytes = 0
    }

    /// Keeps `part` for retries, if the request is still retryable and it fits.
    mutating func retain(_ part: HTTPClientRequestPart, limit: Int, overload: OverloadManager) -> Retention {
        guard self.retained != nil else {
            return .kept
        }
        if case .body(.byteBuffer(let buffer)) = part {
            self.retainedBytes += buffer.readableBytes
        }
        if self.retainedBytes > limit {
            self.dropRetained(overload: overload)
            return .tooLarge
        }
        guard self.retainedReservation.take(part.bufferedBytes, from: overload) else {
            self.dropRetained(overload: overload)
            return .overloaded
        }
        self.retained?.append(part)
        return .kept
    }

    /// No more retries for this request: its kept parts and their share of the budget go.
    mutating func dropRetained(overload: OverloadManager) {
        self.retained = nil
        self.retainedBytes = 0
        self.retainedReservation.releaseAll(to: overload)
    }

    /// The request's head, first of the parts waiting for an upstream (it takes no budget: the header limits bound
    /// it).
    mutating func holdHead(_ head: HTTPRequestHead) {
        self.pending.append(.head(head))
    }

    /// Holds `part` until an upstream takes it; false when the budget has no room (nothing is held then). Ends
    /// take no budget.
    mutating func hold(_ part: HTTPClientRequestPart, overload: OverloadManager) -> Bool {
        guard self.pendingReservation.take(part.bufferedBytes, from: overload) else {
            return false
        }
        self.pending.append(part)
        return true
    }

    /// The parts waiting for an upstream were sent (or dropped): their share of the budget goes.
    mutating func clearPending(overload: OverloadManager) {
        // A small buffer stays for the next request's parts (one allocation less per request); a large one goes.
        self.pending.removeAll(keepingCapacity: self.pending.capacity <= 8)
        self.pendingReservation.releaseAll(to: overload)
    }

    /// The next try sends the request again: `head`, then every kept part. (They are counted once, as retained.)
    mutating func resend(head: HTTPRequestHead, overload: OverloadManager) {
        self.clearPending(overload: overload)
        self.holdHead(head)
        self.pending.append(contentsOf: self.retained ?? [])
    }

    mutating func releaseAll(overload: OverloadManager) {
        self.dropRetained(overload: overload)
        self.clearPending(overload: overload)
    }
}
