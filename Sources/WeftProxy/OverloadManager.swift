import NIOHTTP1
import Synchronization

/// The proxy process's global limits, shared by both listeners and every event loop: open downstream
/// connections (`ProxyLimits.maxDownstreamConnections`) and request bytes held in memory
/// (`ProxyLimits.maxBufferedBytes`: retry buffers and bodies waiting for an upstream connection).
///
/// Both are plain atomics (no lock): a connection costs one add when accepted and one when closed, a buffered
/// body part one add when kept and one when let go.
public final class OverloadManager: Sendable {
    /// Open downstream connections at most; a connection past it is refused.
    public let maxConnections: Int
    /// Request bytes held at most; a request that would go past it is answered `503 overload` or not retried.
    public let maxBufferedBytes: Int
    private let connections = Atomic<Int>(0)
    private let buffered = Atomic<Int>(0)

    public init(maxConnections: Int, maxBufferedBytes: Int) {
        self.maxConnections = maxConnections
        self.maxBufferedBytes = maxBufferedBytes
    }

    /// With the process-wide limits of `limits`.
    public convenience init(_ limits: ProxyLimits) {
        self.init(maxConnections: limits.maxDownstreamConnections, maxBufferedBytes: limits.maxBufferedBytes)
    }

    /// Downstream connections open now (admitted and not closed yet).
    public var openConnections: Int { self.connections.load(ordering: .relaxed) }

    /// Request bytes held now.
    public var bufferedBytes: Int { self.buffered.load(ordering: .relaxed) }

    /// Counts a new downstream connection if it fits; false (and nothing counted) when the cap is reached.
    func admitConnection() -> Bool {
        let open = self.connections.wrappingAdd(1, ordering: .relaxed).newValue
        if open > self.maxConnections {
            self.connections.wrappingSubtract(1, ordering: .relaxed)
            return false
        }
        return true
    }

    /// An admitted connection closed.
    func connectionClosed() {
        self.connections.wrappingSubtract(1, ordering: .relaxed)
    }

    /// Takes `bytes` from the buffer budget if they fit; false (and nothing taken) otherwise.
    func reserve(_ bytes: Int) -> Bool {
        let held = self.buffered.wrappingAdd(bytes, ordering: .relaxed).newValue
        if held > self.maxBufferedBytes {
            self.buffered.wrappingSubtract(bytes, ordering: .relaxed)
            return false
        }
        return true
    }

    /// Gives back `bytes` taken with `reserve`.
    func release(_ bytes: Int) {
        if bytes > 0 {
            self.buffered.wrappingSubtract(bytes, ordering: .relaxed)
        }
    }
}

/// The bytes one holder (a request's retry buffer, its not yet sent parts) took from the `OverloadManager`'s
/// buffer budget, so that it gives back exactly those.
struct BufferReservation {
    private(set) var bytes = 0

    /// Takes `count` more bytes; false when the budget has no room (nothing is taken then).
    mutating func take(_ count: Int, from overload: OverloadManager) -> Bool {
        guard count > 0 else {
            return true
        }
        guard overload.reserve(count) else {
            return false
        }
        self.bytes += count
        return true
    }

    /// Gives everything back.
    mutating func releaseAll(to overload: OverloadManager) {
        overload.release(self.bytes)
        self.bytes = 0
    }
}

extension HTTPClientRequestPart {
    /// The body bytes this part holds (heads and ends: 0; their size is bounded by the header limits).
    var bufferedBytes: Int {
        if case .body(.byteBuffer(let buffer)) = self {
            return buffer.readableBytes
        }
        return 0
    }
}
