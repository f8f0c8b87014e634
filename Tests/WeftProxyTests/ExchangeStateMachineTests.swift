import NIOCore
import NIOHTTP1
import ProxyConfig
import Testing

@testable import WeftProxy

private func head(_ uri: String, keepAlive: Bool = true) -> HTTPServerRequestPart {
    var headers = HTTPHeaders()
    if !keepAlive {
        headers.add(name: "connection", value: "close")
    }
    return .head(HTTPRequestHead(version: .http1_1, method: .GET, uri: uri, headers: headers))
}

private func body(_ count: Int) -> HTTPServerRequestPart {
    .body(ByteBuffer(repeating: 0x61, count: count))
}

private func uri(_ part: HTTPServerRequestPart?) -> String? {
    if case .head(let head) = part {
        return head.uri
    }
    return nil
}

private func served(_ action: ExchangeStateMachine.ReadAction) -> HTTPServerRequestPart? {
    if case .serve(let part) = action {
        return part
    }
    return nil
}

/// The request/response lifecycle `ProxyServerHandler` follows on each downstream connection or stream.
@Suite("ExchangeStateMachine: one request at a time, pipelining, draining and closing")
struct ExchangeStateMachineTests {
    @Test("an HTTP/1.1 request pipelined behind one in flight waits, and is served once that one is answered")
    func pipelinedRequestWaits() {
        var machine = ExchangeStateMachine(isHTTP2: false)
        let action = machine.read(head("/a"))
        #expect(uri(served(action)) == "/a")
        machine.requestStarted(keepAlive: true)
        let end1 = machine.requestEndRead()
        #expect(end1 == .forward)
        guard case .wait = machine.read(head("/b")) else {
            Issue.record("a head read while /a is answered must wait")
            return
        }
        guard case .wait = machine.read(.end(nil)) else {
            Issue.record("everything behind a waiting part waits")
            return
        }
        #expect(machine.hasWaitingParts)
        #expect(machine.holdsReads(upstreamTakesBody: true), "reads stop while parts wait")
        let next1 = machine.nextWaitingPart()
        #expect(next1 == nil, "no head is served while a response is in flight")

        machine.responseHeadSent()
        let finish = machine.responseFinished()
        #expect(finish == .init(requestDone: true, closes: false))
        let next2 = machine.nextWaitingPart()
        #expect(uri(next2) == "/b")
        machine.requestStarted(keepAlive: true)
        if case .end = machine.nextWaitingPart() {
        } else {
            Issue.record("the end of /b follows its head")
        }
        let end2 = machine.requestEndRead()
        #expect(end2 == .forward)
        #expect(!machine.hasWaitingParts)
        #expect(!machine.holdsReads(upstreamTakesBody: false), "a request fully read holds no reads")
    }

    @Test("HTTP/2 streams never queue: each stream carries one request")
    func http2NeverWaits() {
        var machine = ExchangeStateMachine(isHTTP2: true)
        _ = machine.read(head("/a"))
        machine.requestStarted(keepAlive: false)
        #expect(machine.keepAlive, "an HTTP/2 stream's connection stays open whatever the request says")
        let action = machine.read(body(3))
        #expect(served(action) != nil)
        #expect(!machine.hasWaitingParts)
    }

    @Test("an answer before the body ends drains it; the connection is reusable once the body is read")
    func drainsTheRestOfTheBody() {
        var machine = ExchangeStateMachine(isHTTP2: false)
        _ = machine.read(head("/upload"))
        machine.requestStarted(keepAlive: true)
        #expect(machine.waitsForBody)
        #expect(machine.holdsReads(upstreamTakesBody: false), "the body waits for an upstream")
        #expect(!machine.holdsReads(upstreamTakesBody: true))
        machine.responseHeadSent()
        let finish = machine.responseFinished()
        #expect(finish == .init(requestDone: false, closes: false))
        #expect(machine.phase == .draining)
        #expect(machine.waitsForBody, "the body timeout still watches a draining body")
        #expect(!machine.holdsReads(upstreamTakesBody: false), "a drained body is read and dropped")
        let action = machine.read(body(10))
        #expect(served(action) != nil)
        let end = machine.requestEndRead()
        #expect(end == .drained(close: false))
        #expect(machine.phase == .idle)
        #expect(!machine.waitsForBody)
    }

    @Test("a closing answer stops serving: what follows is discarded, and past 1 MiB the connection closes")
    func closingAnswerLingers() {
        var machine = ExchangeStateMachine(isHTTP2: false)
        _ = machine.read(head("/a", keepAlive: false))
        machine.requestStarted(keepAlive: false)
        _ = machine.requestEndRead()
        guard case .wait = machine.read(head("/b")) else {
            Issue.record("a pipelined head waits")
            return
        }
        let finish = machine.responseFinished()
        #expect(finish == .init(requestDone: true, closes: true))
        #expect(machine.closing)
        let next = machine.nextWaitingPart()
        #expect(next == nil, "nothing behind a closing answer is served")
        guard case .discard = machine.read(body(ExchangeStateMachine.lingerBytes)) else {
            Issue.record("bytes after the closing answer are dropped")
            return
        }
        guard case .close = machine.read(body(1)) else {
            Issue.record("more than lingerBytes after the closing answer closes the connection")
            return
        }
    }

    @Test("a refused upgrade or an undelimitable body closes the connection after the answer")
    func closeAfterResponse() {
        var machine = ExchangeStateMachine(isHTTP2: false)
        _ = machine.read(head("/a"))
        machine.requestStarted(keepAlive: true)
        machine.closeAfterResponse()
        _ = machine.requestEndRead()
        let finish = machine.responseFinished()
        #expect(finish.closes)
    }

    @Test("a local answer to a request told to wait for 100 Continue, before its body came, closes the connection")
    func unsentContinueBody() {
        var machine = ExchangeStateMachine(isHTTP2: false)
        _ = machine.read(head("/a"))
        machine.requestStarted(keepAlive: true)
        machine.answeringLocally(bodyExpectedAfterContinue: true)
        #expect(!machine.keepAlive)

        var ended = ExchangeStateMachine(isHTTP2: false)
        ended.requestStarted(keepAlive: true)
        _ = ended.requestEndRead()
        ended.answeringLocally(bodyExpectedAfterContinue: true)
        #expect(ended.keepAlive, "the whole request was read: nothing unknown follows")
    }

    @Test(
        "draining the proxy: an idle connection closes at once, a busy one after its answer, waiting requests dropped")
    func quiesce() {
        var idle = ExchangeStateMachine(isHTTP2: false)
        let closesNow1 = idle.quiesce()
        #expect(closesNow1)

        var busy = ExchangeStateMachine(isHTTP2: false)
        _ = busy.read(head("/a"))
        busy.requestStarted(keepAlive: true)
        _ = busy.requestEndRead()
        _ = busy.read(head("/b"))
        let closesNow2 = busy.quiesce()
        #expect(!closesNow2)
        #expect(!busy.hasWaitingParts)
        let finish = busy.responseFinished()
        #expect(finish == .init(requestDone: true, closes: true))

        var draining = ExchangeStateMachine(isHTTP2: false)
        draining.requestStarted(keepAlive: true)
        _ = draining.responseFinished()
        let closesNow3 = draining.quiesce()
        #expect(!closesNow3)
        let end = draining.requestEndRead()
        #expect(end == .drained(close: true), "the drained body's end closes it")
    }

    @Test("a parse error is answered once, and never mid-response or in a tunnel")
    func parseErrors() {
        var machine = ExchangeStateMachine(isHTTP2: false)
        let answered1 = machine.parseError(connectionActive: true)
        #expect(answered1)
        #expect(!machine.keepAlive)
        #expect(machine.requestEnded)
        let answered2 = machine.parseError(connectionActive: true)
        #expect(!answered2, "the decoder may report the same input twice")

        var closed = ExchangeStateMachine(isHTTP2: false)
        let answered3 = closed.parseError(connectionActive: false)
        #expect(!answered3)

        var midResponse = ExchangeStateMachine(isHTTP2: false)
        midResponse.requestStarted(keepAlive: true)
        midResponse.responseHeadSent()
        let answered4 = midResponse.parseError(connectionActive: true)
        #expect(!answered4)

        var tunnel = ExchangeStateMachine(isHTTP2: false)
        tunnel.requestStarted(keepAlive: true)
        tunnel.tunnelStarted()
        let answered5 = tunnel.parseError(connectionActive: true)
        #expect(!answered5)
        let end = tunnel.requestEndRead()
        #expect(end == .ignore)
    }
}

@Suite("DownstreamResponse: local answers and forwarded heads")
struct DownstreamResponseTests {
    @Test("a local answer names its reason in a header and the body, and says close when the connection closes")
    func localText() {
        let answer = DownstreamResponse.Local(
            status: 503, reason: .overflow, isGRPC: false, version: .http1_1, connection: .close)
        #expect(answer.status == 503)
        #expect(answer.head.headers["x-weft-reason"] == ["overflow"])
        #expect(answer.body == "overflow\n")
        #expect(answer.head.headers["content-length"] == ["9"])
        #expect(answer.head.headers["connection"] == ["close"])
        #expect(answer.trailers == nil)
    }

    @Test("an HTTP/1.0 client kept alive is told so; HTTP/2 gets no connection field")
    func connectionField() {
        #expect(DownstreamResponse.Connection(isHTTP2: false, keepAlive: true, version: .http1_0) == .keepAlive)
        #expect(DownstreamResponse.Connection(isHTTP2: false, keepAlive: true, version: .http1_1) == .implicit)
        #expect(DownstreamResponse.Connection(isHTTP2: false, keepAlive: false, version: .http1_1) == .close)
        #expect(DownstreamResponse.Connection(isHTTP2: true, keepAlive: false, version: .http2) == .implicit)
        let answer = DownstreamResponse.Local(
            status: 404, reason: .routeNotFound, isGRPC: false, version: .http1_0, connection: .keepAlive)
        #expect(answer.head.headers["connection"] == ["keep-alive"])
    }

    @Test("a gRPC request gets status 200 with grpc-status in trailers and no body")
    func localGRPC() {
        let answer = DownstreamResponse.Local(
            status: 504, reason: .timeout, isGRPC: true, version: .http2, connection: .implicit)
        #expect(answer.status == 200)
        #expect(answer.body == nil)
        #expect(answer.head.headers["content-type"] == ["application/grpc"])
        #expect(answer.trailers?["grpc-status"] == ["4"], "a timeout is DEADLINE_EXCEEDED")
        #expect(answer.trailers?["grpc-message"] == ["weft: timeout"])
    }

    @Test("a redirect carries its location")
    func location() {
        let answer = DownstreamResponse.Local(
            status: 301, reason: .redirect, location: "https://shop.example/", isGRPC: false, version: .http1_1,
            connection: .implicit)
        #expect(answer.head.headers["location"] == ["https://shop.example/"])
        #expect(answer.head.headers["connection"].isEmpty)
    }

    @Test("a forwarded head loses its hop-by-hop fields, gets the route's rewrites and the downstream's connection")
    func forwarded() {
        var headers = HTTPHeaders()
        headers.add(name: "connection", value: "keep-alive, x-hop")
        headers.add(name: "x-hop", value: "1")
        headers.add(name: "keep-alive", value: "timeout=5")
        headers.add(name: "server", value: "app")
        headers.add(name: "content-length", value: "2")
        let response = HTTPResponseHead(version: .http1_1, status: .ok, headers: headers)
        let rewrite = HeaderOperations(set: [HeaderValue(name: "x-served-by", value: "weft")], remove: ["server"])
        let head = DownstreamResponse.forwarded(
            response, rewrites: [rewrite], version: .http1_0, connection: .keepAlive
        ).head
        #expect(head.version == .http1_0)
        #expect(head.headers["x-hop"].isEmpty)
        #expect(head.headers["keep-alive"].isEmpty)
        #expect(head.headers["server"].isEmpty)
        #expect(head.headers["x-served-by"] == ["weft"])
        #expect(head.headers["content-length"] == ["2"])
        #expect(head.headers["connection"] == ["keep-alive"])
    }

    @Test("an accepted upgrade keeps its upgrade field")
    func upgrade() {
        var headers = HTTPHeaders()
        headers.add(name: "connection", value: "upgrade")
        headers.add(name: "upgrade", value: "websocket")
        let response = HTTPResponseHead(version: .http1_1, status: .switchingProtocols, headers: headers)
        let head = DownstreamResponse.forwarded(
            response, rewrites: [], version: .http1_1, connection: .implicit, upgrade: true
        ).head
        #expect(head.status == .switchingProtocols)
        #expect(head.headers["upgrade"] == ["websocket"])
    }
}

@Suite("RequestBuffers: parts kept for retries and held for an upstream, within the buffer budget")
struct RequestBuffersTests {
    private static let request = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/")

    private static func body(_ text: String) -> HTTPClientRequestPart {
        .body(.byteBuffer(ByteBuffer(string: text)))
    }

    @Test("parts are kept for a retry and resent after the head; the budget is given back")
    func resend() {
        let overload = OverloadManager(maxConnections: 10, maxBufferedBytes: 1000)
        var buffers = RequestBuffers()
        buffers.retainForRetries()
        let retention1 = buffers.retain(Self.body("abc"), limit: 100, overload: overload)
        #expect(retention1 == .kept)
        let retention2 = buffers.retain(.end(nil), limit: 100, overload: overload)
        #expect(retention2 == .kept)
        #expect(overload.bufferedBytes == 3)
        buffers.resend(head: Self.request, overload: overload)
        #expect(buffers.pending.count == 3)
        if case .head(let head) = buffers.pending.first {
            #expect(head.uri == "/")
        } else {
            Issue.record("the head goes first")
        }
        buffers.releaseAll(overload: overload)
        #expect(overload.bufferedBytes == 0)
        #expect(buffers.retained == nil)
        #expect(buffers.pending.isEmpty)
    }

    @Test("a body past the retry buffer stops retries and gives back what it kept")
    func tooLarge() {
        let overload = OverloadManager(maxConnections: 10, maxBufferedBytes: 1000)
        var buffers = RequestBuffers()
        buffers.retainForRetries()
        let retention1 = buffers.retain(Self.body("abcd"), limit: 6, overload: overload)
        #expect(retention1 == .kept)
        let retention2 = buffers.retain(Self.body("efg"), limit: 6, overload: overload)
        #expect(retention2 == .tooLarge)
        #expect(buffers.retained == nil)
        #expect(overload.bufferedBytes == 0)
        let retention3 = buffers.retain(.end(nil), limit: 6, overload: overload)
        #expect(retention3 == .kept, "nothing more is counted")
    }

    @Test("with the process's buffer budget spent, nothing more is kept or held")
    func overloaded() {
        let overload = OverloadManager(maxConnections: 10, maxBufferedBytes: 4)
        var buffers = RequestBuffers()
        buffers.retainForRetries()
        let retention = buffers.retain(Self.body("abcde"), limit: 100, overload: overload)
        #expect(retention == .overloaded)
        #expect(buffers.retained == nil)
        let held1 = buffers.hold(.head(Self.request), overload: overload)
        #expect(held1, "a head takes no budget")
        let held2 = buffers.hold(Self.body("abc"), overload: overload)
        #expect(held2)
        let held3 = buffers.hold(Self.body("de"), overload: overload)
        #expect(!held3)
        #expect(buffers.pending.count == 2)
        buffers.clearPending(overload: overload)
        #expect(overload.bufferedBytes == 0)
    }
}
