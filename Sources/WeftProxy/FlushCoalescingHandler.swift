import NIOCore

/// Sits between an HTTP/2 connection's `NIOHTTP2Handler` and the socket (or the TLS handler) and makes one write
/// of what the connection's streams write in one event-loop tick:
///
/// - `flush` is deferred to the end of the current tick, once. NIO's HTTP/2 handler coalesces the flushes of its
///   streams only while the connection itself is reading; a proxy's streams write when their upstreams answer, so
///   without this every stream's response would cost its own `write` system call.
/// - Small writes (up to `copyLimit` bytes: frame headers, HEADERS frames, small DATA payloads) are copied into
///   one batch buffer that goes out as one write when the flush comes. The HTTP/2 handler encodes every frame
///   into the same buffer after clearing it; while the socket's pending write held that buffer, the clear had
///   to allocate a new one for every frame. Copied here, its buffer is free again at once, the socket gets one
///   buffer instead of a vector of small ones, and TLS seals one record instead of one per frame. Larger writes
///   (big DATA payloads) pass through uncopied, after the batch, in order.
final class FlushCoalescingHandler: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    /// Writes up to this size are copied into the batch; larger ones pass through.
    static let copyLimit = 4096
    /// A batch that grew beyond this is let go once written, so that an idle connection does not keep it.
    static let keptCapacity = 65536

    private var scheduled = false
    private var batch: ByteBuffer?
    /// The promises of the writes in the batch, completed with the batch's write.
    private var promises: [EventLoopPromise<Void>] = []

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .byteBuffer(var buffer) = self.unwrapOutboundIn(data), buffer.readableBytes <= Self.copyLimit
        else {
            self.writeBatch(context: context)
            context.write(data, promise: promise)
            return
        }
        var batch = self.batch ?? context.channel.allocator.buffer(capacity: max(1024, buffer.readableBytes))
        // Not shared with the stored property while it grows (that would copy it).
        self.batch = nil
        if batch.readableBytes == 0 {
            // The last batch's write is done with the storage when the socket took it: clearing reuses it.
            batch.clear()
        }
        batch.writeBuffer(&buffer)
        self.batch = batch
        if let promise {
            self.promises.append(promise)
        }
    }

    func flush(context: ChannelHandlerContext) {
        guard !self.scheduled else {
            return
        }
        self.scheduled = true
        context.eventLoop.assumeIsolated().execute { [self] in
            guard self.scheduled else {
                // Flushed already (a close came first).
                return
            }
            self.scheduled = false
            self.writeBatch(context: context)
            context.flush()
        }
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        // What was written before the close goes where it would have gone without the batch: into the socket's
        // pending writes, and out with the flush that was asked for before the close.
        self.writeBatch(context: context)
        if self.scheduled {
            self.scheduled = false
            context.flush()
        }
        context.close(mode: mode, promise: promise)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        // Removed with the closed channel: what the batch holds can no longer be written.
        self.batch = nil
        self.scheduled = false
        let promises = self.promises
        self.promises.removeAll()
        for promise in promises {
            promise.fail(ChannelError.ioOnClosedChannel)
        }
    }

    /// Writes the batch (not flushed), keeping its storage for the next tick's batch.
    private func writeBatch(context: ChannelHandlerContext) {
        guard var batch = self.batch, batch.readableBytes > 0 else {
            return
        }
        self.batch = nil
        let promise: EventLoopPromise<Void>?
        switch self.promises.count {
        case 0:
            promise = nil
        case 1:
            promise = self.promises[0]
            self.promises.removeAll(keepingCapacity: true)
        default:
            let promises = self.promises
            self.promises.removeAll(keepingCapacity: true)
            let combined = context.eventLoop.makePromise(of: Void.self)
            combined.futureResult.whenComplete { result in
                for each in promises {
                    each.completeWith(result)
                }
            }
            promise = combined
        }
        context.write(self.wrapOutboundOut(.byteBuffer(batch)), promise: promise)
        if batch.capacity <= Self.keptCapacity {
            batch.moveReaderIndex(to: batch.writerIndex)
            self.batch = batch
        }
    }
}

@available(*, unavailable)
extension FlushCoalescingHandler: Sendable {}
