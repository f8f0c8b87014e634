import NIOCore
import NIOPosix
import Synchronization

/// Serving NIO servers so that stopping them, by cancellation or by closing the listener, cannot crash.
///
/// NIO traps ("Deinited NIOAsyncWriter without calling finish()", swift-nio#2637) on any `NIOAsyncChannel` that
/// is dropped without `executeThenClose`. With the async `bind`, a connection accepted just as the server stops
/// is exactly that: the accept loop's task was cancelled with connections still buffered in its sequence, or the
/// listener closed while a connection's initializer was still running. It took a whole CI run down once, when
/// a proxy reconnected as a test cancelled the controller; `ServerCancellationTests` crashes within a few rounds
/// without this.
public enum CancellationSafeServing {
    /// Runs `body` (a server's serve loop that cannot be changed, such as grpc-swift's) in a task that
    /// cancellation does not reach directly: on cancellation `shutdown` is called (it should close the listener
    /// and end long-lived work), and only if `body` has not returned `forceAfter` later is its task cancelled.
    /// This keeps grpc-swift's accept loop from being cancelled with connections still buffered; the narrower
    /// window of a connection initializing as the listener closes remains (grpc-swift owns that loop).
    public static func shielded<Result: Sendable>(
        forceAfter: Duration = .seconds(5),
        _ body: @escaping @Sendable () async throws -> Result,
        onCancel shutdown: @escaping @Sendable () -> Void
    ) async throws -> Result {
        let task = Task { try await body() }  // awaited-before-return
        return try await withTaskCancellationHandler {
            try await task.value
        } onCancel: {
            shutdown()
            // A timer on an event loop, not a task: nothing outlives this call but a no-op cancel.
            MultiThreadedEventLoopGroup.singleton.any().scheduleTask(in: TimeAmount(forceAfter)) {
                task.cancel()
            }
        }
    }
}

/// The connections a listener accepted, handed to the task that serves them, such that each one that was
/// wrapped in a `NIOAsyncChannel` is taken by someone who will call `executeThenClose` on it.
///
/// Use the classic `childChannelInitializer` and call ``admit(_:)`` there: the wrapper is made under the queue's
/// lock, and only while the queue is open, so none is made that nobody will take. The serving task takes
/// connections with ``next()`` (nil once the queue is finished or the task cancelled) and, when it stops,
/// ``close()`` hands it those still queued, to close.
public final class AcceptQueue<Connection: Sendable>: Sendable {
    private struct State: ~Copyable {
        var queued: [Connection] = []
        var waiter: CheckedContinuation<Connection?, Never>?
        var finished = false
        var closed = false
    }

    /// Thrown by ``admit(_:)`` once the queue is closed: the initializer fails and NIO closes the connection.
    public struct Closed: Error {}

    private let state = Mutex(State())

    public init() {}

    /// Wraps an accepted connection (`make` runs under the lock) and queues it, or throws ``Closed``.
    public func admit(_ make: () throws -> Connection) throws {
        let waiter: (CheckedContinuation<Connection?, Never>, Connection)? = try self.state.withLock { state in
            guard !state.closed else { throw Closed() }
            let connection = try make()
            if let waiter = state.waiter {
                state.waiter = nil
                return (waiter, connection)
            }
            state.queued.append(connection)
            return nil
        }
        if let (continuation, connection) = waiter {
            continuation.resume(returning: connection)
        }
    }

    /// The next connection; nil once ``finish()`` was called or the calling task is cancelled (what is still
    /// queued then stays for ``close()``).
    public func next() async -> Connection? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Connection?, Never>) in
                let answer: Connection?? = self.state.withLock { state in
                    if !state.queued.isEmpty { return .some(state.queued.removeFirst()) }
                    if state.finished || Task.isCancelled { return .some(nil) }
                    state.waiter = continuation
                    return .none
                }
                if let answer { continuation.resume(returning: answer) }
            }
        } onCancel: {
            self.finish()
        }
    }

    /// Makes ``next()`` return nil (graceful shutdown); connections may still be admitted until ``close()``.
    public func finish() {
        let waiter = self.state.withLock { state in
            state.finished = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: nil)
    }

    /// Refuses every later connection and returns those still queued (the caller closes them).
    public func close() -> [Connection] {
        let (waiter, queued) = self.state.withLock { state in
            state.finished = true
            state.closed = true
            defer {
                state.waiter = nil
                state.queued = []
            }
            return (state.waiter, state.queued)
        }
        waiter?.resume(returning: nil)
        return queued
    }
}

extension CancellationSafeServing {
    /// Serves what `queue` admits, each connection in a child task running `serve` (which calls
    /// `executeThenClose` on it), until the queue is finished (graceful shutdown) or the task cancelled; then
    /// closes `listener` and every connection still queued, and waits for the connections' tasks.
    public static func serve<Inbound: Sendable, Outbound: Sendable>(
        listener: any Channel, queue: AcceptQueue<NIOAsyncChannel<Inbound, Outbound>>,
        _ serve: @escaping @Sendable (NIOAsyncChannel<Inbound, Outbound>) async -> Void
    ) async {
        await withDiscardingTaskGroup { group in
            while let connection = await queue.next() {
                group.addTask { await serve(connection) }
            }
            try? await listener.close()
            for connection in queue.close() {
                group.addTask { try? await connection.executeThenClose { _, _ in } }
            }
        }
    }
}
