import NIOCore
import NIOHTTP1

/// The request/response lifecycle of one downstream HTTP/1.1 connection or HTTP/2 stream, without I/O: which
/// request part is served now and which waits (HTTP/1.1 pipelining), when the request is over, whether the
/// connection stays open after a response, and whether reads are held. `ProxyServerHandler` feeds it the events
/// and carries out the actions it returns.
///
/// One request at a time: a pipelined HTTP/1.1 request waits until the one before it is answered, and while any
/// part waits, reads are held, so at most one read's worth queues up. (NIO's `HTTPServerPipelineHandler` held
/// reads during every response, which took the socket out of epoll and put it back on every request.)
struct ExchangeStateMachine {
    enum Phase: Equatable {
        case idle
        /// Forwarding the request upstream (or waiting for its delay, backoff or connection).
        case forwarding
        /// The response is done (local or upstream); discarding the rest of the request body.
        case draining
        /// The connection became a byte tunnel (WebSocket, CONNECT).
        case tunnel
    }

    /// What to do with a request part just read.
    enum ReadAction {
        case serve(HTTPServerRequestPart)
        /// Queued behind the request being answered.
        case wait
        /// Read after the closing answer: dropped.
        case discard
        /// Too much arrived after the closing answer: close now.
        case close
    }

    /// What the end of the request means.
    enum EndAction: Equatable {
        /// Send it upstream.
        case forward
        /// The answered request's body is drained; the connection closes (`close`) or serves what waits.
        case drained(close: Bool)
        case ignore
    }

    /// What follows a response's end.
    struct Finish: Equatable {
        /// The request is over too (not still sending its body): the next one may be served.
        var requestDone: Bool
        /// The connection closes after this response.
        var closes: Bool
    }

    /// How many bytes a closing connection reads and drops before it gives up lingering.
    static let lingerBytes = 1 << 20

    let isHTTP2: Bool
    private(set) var phase = Phase.idle
    /// The connection may serve another request after this one.
    private(set) var keepAlive = true
    /// The last response went out with the connection closing: nothing read after it is a request to serve (a
    /// pipelined request behind a refused one must not be routed, let alone dial an upstream).
    private(set) var closing = false
    private(set) var requestEnded = false
    private(set) var responseStarted = false
    private var lingeredBytes = 0
    /// HTTP/1.1 parts read while an earlier request was being answered; nil when none wait.
    private var waiting: CircularBuffer<HTTPServerRequestPart>?
    /// A parse error was answered (NIO's decoder may report the same input twice).
    private var parseErrorAnswered = false

    init(isHTTP2: Bool) {
        self.isHTTP2 = isHTTP2
    }

    /// A part waits to be served.
    var hasWaitingParts: Bool { self.waiting != nil }

    /// The request's body is still coming (what `bodyTimeout` watches, also while draining after a response).
    var waitsForBody: Bool {
        (self.phase == .forwarding || self.phase == .draining) && !self.requestEnded
    }

    /// Whether the next downstream read should wait: parts are queued, or the request body has nowhere to go
    /// (`upstreamTakesBody`: an upstream has the head and can be written to).
    func holdsReads(upstreamTakesBody: Bool) -> Bool {
        self.waiting != nil || (self.phase == .forwarding && !self.requestEnded && !upstreamTakesBody)
    }

    mutating func read(_ part: HTTPServerRequestPart) -> ReadAction {
        if self.closing {
            if case .body(let buffer) = part {
                self.lingeredBytes += buffer.readableBytes
            }
            return self.lingeredBytes > Self.lingerBytes ? .close : .discard
        }
        if !self.isHTTP2, self.mustWait(part) {
            self.waiting = self.waiting ?? CircularBuffer(initialCapacity: 4)
            self.waiting?.append(part)
            return .wait
        }
        return .serve(part)
    }

    /// A head waits while a response is in flight, and everything waits behind a part that waits.
    private func mustWait(_ part: HTTPServerRequestPart) -> Bool {
        if self.waiting != nil {
            return true
        }
        if case .head = part {
            return self.phase != .idle
        }
        return false
    }

    /// The next waiting part that may be served now, in order (a head only once the connection is idle).
    mutating func nextWaitingPart() -> HTTPServerRequestPart? {
        guard !self.closing, let part = self.waiting?.first else {
            return nil
        }
        if case .head = part, self.phase != .idle {
            return nil
        }
        self.waiting?.removeFirst()
        if self.waiting?.isEmpty ?? false {
            self.waiting = nil
        }
        return part
    }

    /// A request head is being served.
    mutating func requestStarted(keepAlive: Bool) {
        self.keepAlive = self.isHTTP2 || keepAlive
        self.requestEnded = false
        self.responseStarted = false
        self.phase = .forwarding
    }

    /// The connection closes after the current response (a refused upgrade, an undelimitable body, a stall).
    mutating func closeAfterResponse() {
        self.keepAlive = false
    }

    /// A local answer is about to go out: a client told to wait for `100 Continue`, which never came, may or may
    /// not send its body, so the connection cannot be reused.
    mutating func answeringLocally(bodyExpectedAfterContinue: Bool) {
        if bodyExpectedAfterContinue, !self.requestEnded {
            self.keepAlive = false
        }
    }

    mutating func requestEndRead() -> EndAction {
        self.requestEnded = true
        switch self.phase {
        case .forwarding:
            return .forward
        case .draining:
            self.phase = .idle
            return .drained(close: !self.keepAlive)
        case .idle, .tunnel:
            return .ignore
        }
    }

    mutating func responseHeadSent() {
        self.responseStarted = true
    }

    /// The response's end is going out.
    mutating func responseFinished() -> Finish {
        self.phase = self.requestEnded ? .idle : .draining
        if !self.keepAlive {
            self.closing = true
        }
        return Finish(requestDone: self.phase == .idle, closes: !self.keepAlive)
    }

    /// The response cannot be finished (its head went out): the connection or stream is reset.
    mutating func aborted() {
        self.phase = .draining
    }

    mutating func tunnelStarted() {
        self.responseStarted = true
        self.phase = .tunnel
    }

    /// The proxy drains (HTTP/1.1; HTTP/2 streams see GOAWAY instead): nothing waiting is served, the connection
    /// closes after the current response. True when it is idle and closes now.
    mutating func quiesce() -> Bool {
        self.waiting = nil
        self.keepAlive = false
        return self.phase == .idle
    }

    /// NIO's decoder reported unparsable input. True when it gets an answer (400 or 431, then the connection
    /// closes): once, on an open connection, and not in a tunnel or mid-response.
    mutating func parseError(connectionActive: Bool) -> Bool {
        guard !self.parseErrorAnswered, connectionActive, self.phase != .tunnel,
            !(self.phase == .forwarding && self.responseStarted)
        else {
            return false
        }
        self.parseErrorAnswered = true
        self.keepAlive = false
        self.requestEnded = true
        self.phase = .forwarding
        return true
    }

    mutating func connectionClosed() {
        self.phase = .idle
    }
}
