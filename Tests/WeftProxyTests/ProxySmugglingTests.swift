import Foundation
import NIOCore
import ProxyConfig
import Testing
import WeftProxy

/// Issue 11 item 1: HTTP/1.1 message framing per RFC 9112, on raw sockets. Every ambiguous or malformed request is
/// answered `400` (`malformed_request`) and its connection closed, and the upstream (`RawRecorder`, a strict
/// raw-socket parser) never sees the request nor the second request hidden behind it. The cases run one at a time
/// (`.serialized`): each starts a proxy, and 52 at once starved the rest of the run on two cores.
@Suite("weft-proxy request smuggling: RFC 9112 framing on raw sockets", .serialized)
struct ProxySmugglingTests {
    /// A request the proxy must refuse; `bytes` ends with a smuggled `GET /smuggled` that only a proxy reading the
    /// framing differently from the upstream would forward.
    struct Hostile: Sendable, CustomTestStringConvertible {
        var name: String
        var bytes: String
        /// The head is valid and goes upstream before the body turns out broken (chunk sizes): the upstream may see
        /// the start of that one request, never a second one.
        var headMayReachUpstream = false

        var testDescription: String { self.name }
    }

    static let smuggled = "GET /smuggled HTTP/1.1\r\nHost: catalog\r\n\r\n"

    static let hostile: [Hostile] = [
        // RFC 9112 §6.1: both framings. A proxy that reads one and an upstream that reads the other disagree on
        // where the next request starts.
        Hostile(
            name: "Content-Length and Transfer-Encoding",
            bytes: "POST /a HTTP/1.1\r\nHost: catalog\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n"
                + "0\r\n\r\n" + smuggled),
        Hostile(
            name: "Transfer-Encoding then Content-Length",
            bytes: "POST /a HTTP/1.1\r\nHost: catalog\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
                + "0\r\n\r\n" + smuggled),
        // §6.3 item 5: differing lengths, as two fields or as a list.
        Hostile(
            name: "two differing Content-Length fields",
            bytes: "POST /a HTTP/1.1\r\nHost: catalog\r\nContent-Length: 0\r\nContent-Length: 41\r\n\r\n" + smuggled),
        Hostile(
            name: "a comma-listed differing Content-Length",
            bytes: "POST /a HTTP/1.1\r\nHost: catalog\r\nContent-Length: 0, 41\r\n\r\n" + smuggled),
        Hostile(
            name: "a Content-Length with a sign",
            bytes: "POST /a HTTP/1.1\r\nHost: catalog\r\nContent-Length: +0\r\n\r\n" + smuggled),
        Hostile(
            name: "a Content-Length that is not a number",
            bytes: "POST /a HTTP/1.1\r\nHost: catalog\r\nContent-Length: 0x29\r\n\r\n" + smuggled),
        Hostile(
            name: "a Content-Length past 2^64",
            bytes: "POST /a HTTP/1.1\r\nHost: catalog\r\nContent-Length: 18446744073709551657\r\n\r\n" + smuggled),
        // §6.1: chunked must be the final coding, and the only one this proxy takes.
        Hostile(
            name: "chunked not the final transfer coding",
            bytes: "POST /a HTTP/1.1\r\nHost: catalog\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"
                + smuggled),
        Hostile(
            name: "a transfer coding that is not chunked",
            bytes: "POST /a HTTP/1.1\r\nHost: catalog\r\nTransfer-Encoding: identity\r\n\r\n" + smuggled),
        Hostile(
            name: "a transfer coding that only contains chunked",
            bytes: "POST /a HTTP/1.1\r\nHost: catalog\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + smuggled),
        Hostile(
            name: "chunked twice",
            bytes:
                "POST /a HTTP/1.1\r\nHost: catalog\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
                + "0\r\n\r\n" + smuggled),
        Hostile(
            name: "Transfer-Encoding on HTTP/1.0",
            bytes: "POST /a HTTP/1.0\r\nHost: catalog\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled),
        // §5.2: obs-fold in a request is refused (a recipient may otherwise unfold it, and disagree).
        Hostile(
            name: "obs-fold in a field",
            bytes: "GET /a HTTP/1.1\r\nHost: catalog\r\nX-Folded: one\r\n two\r\n\r\n" + smuggled),
        Hostile(
            name: "obs-fold in Transfer-Encoding",
            bytes: "POST /a HTTP/1.1\r\nHost: catalog\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 41\r\n\r\n"
                + smuggled),
        // §5.1: no whitespace between the field name and the colon.
        Hostile(
            name: "whitespace before the colon",
            bytes: "POST /a HTTP/1.1\r\nHost: catalog\r\nTransfer-Encoding : chunked\r\nContent-Length: 41\r\n\r\n"
                + smuggled),
        Hostile(
            name: "a tab before the colon",
            bytes: "POST /a HTTP/1.1\r\nHost: catalog\r\nContent-Length\t: 41\r\n\r\n" + smuggled),
        Hostile(
            name: "whitespace before the first field",
            bytes: "POST /a HTTP/1.1\r\n Content-Length: 41\r\nHost: catalog\r\n\r\n" + smuggled),
        // §5.5: CR, LF and NUL are never valid in a field; names are tokens.
        Hostile(
            name: "a NUL in a field value",
            bytes: "GET /a HTTP/1.1\r\nHost: catalog\r\nX-Value: a\u{0}b\r\n\r\n" + smuggled),
        Hostile(
            name: "a bare CR in a field value",
            bytes: "GET /a HTTP/1.1\r\nHost: catalog\r\nX-Value: a\rContent-Length: 41\r\n\r\n" + smuggled),
        Hostile(
            name: "a space in a field name",
            bytes: "GET /a HTTP/1.1\r\nHost: catalog\r\nX Value: a\r\n\r\n" + smuggled),
        Hostile(
            name: "a separator in a field name",
            bytes: "GET /a HTTP/1.1\r\nHost: catalog\r\nX(Value): a\r\n\r\n" + smuggled),
        Hostile(
            name: "a field line without a colon",
            bytes: "GET /a HTTP/1.1\r\nHost: catalog\r\nContent-Length 41\r\n\r\n" + smuggled),
        // §2.2: line ends are CRLF; this proxy accepts no bare LF anywhere.
        Hostile(
            name: "bare LF line ends",
            bytes: "GET /a HTTP/1.1\nHost: catalog\n\n" + smuggled),
        Hostile(
            name: "a bare LF after one field",
            bytes: "GET /a HTTP/1.1\r\nHost: catalog\nContent-Length: 41\r\n\r\n" + smuggled),
        Hostile(
            name: "a bare LF after a chunk size",
            bytes: "POST /a HTTP/1.1\r\nHost: catalog\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n"
                + smuggled,
            headMayReachUpstream: true),
        // §7.1: chunk sizes.
        Hostile(
            name: "a chunk size past 2^64",
            bytes: "POST /a HTTP/1.1\r\nHost: catalog\r\nTransfer-Encoding: chunked\r\n\r\n"
                + "10000000000000000000000000029\r\n" + smuggled + "\r\n0\r\n\r\n",
            headMayReachUpstream: true),
        Hostile(
            name: "a chunk size that is not hexadecimal",
            bytes: "POST /a HTTP/1.1\r\nHost: catalog\r\nTransfer-Encoding: chunked\r\n\r\n0x29\r\n" + smuggled
                + "\r\n0\r\n\r\n",
            headMayReachUpstream: true),
        Hostile(
            name: "chunk data longer than its size",
            bytes: "POST /a HTTP/1.1\r\nHost: catalog\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc\r\n0\r\n\r\n"
                + smuggled,
            headMayReachUpstream: true),
        // §3: the request line.
        Hostile(
            name: "junk after the version",
            bytes: "GET /a HTTP/1.1 junk\r\nHost: catalog\r\n\r\n" + smuggled),
        Hostile(
            name: "an unknown version",
            bytes: "GET /a HTTP/1.7x\r\nHost: catalog\r\n\r\n" + smuggled),
        Hostile(
            name: "a control character in the method",
            bytes: "G\u{1}T /a HTTP/1.1\r\nHost: catalog\r\n\r\n" + smuggled),
        Hostile(
            name: "a space inside the target",
            bytes: "GET /a /b HTTP/1.1\r\nHost: catalog\r\n\r\n" + smuggled),
        // §3.2: exactly one Host in HTTP/1.1.
        Hostile(
            name: "two Host fields",
            bytes: "GET /a HTTP/1.1\r\nHost: catalog\r\nHost: other\r\n\r\n" + smuggled),
        Hostile(
            name: "no Host field in HTTP/1.1",
            bytes: "GET /a HTTP/1.1\r\nX-Other: 1\r\n\r\n" + smuggled),
    ]

    private static func catalog(_ recorder: RawRecorder) -> ProxyConfig { ProxyFramingTests.catalog(recorder) }

    @Test(arguments: hostile)
    func refusedWithA400AndNothingSmuggled(_ request: Hostile) async throws {
        let recorder = try await RawRecorder.start()
        try await ProxyHarness.withProxy(config: Self.catalog(recorder)) { proxy in
            // `rawExchange` returns when the proxy closes the connection (and throws after 5 s if it does not).
            let answer = try await rawExchange(port: proxy.outboundPort, request.bytes)
            // (HTTP/1.0 for the HTTP/1.0 request.)
            #expect(answer.dropFirst(8).hasPrefix(" 400 Bad Request\r\n"), "\(answer)")
            #expect(answer.hasPrefix("HTTP/1."), "\(answer)")
            #expect(answer.contains("x-weft-reason: malformed_request\r\n"), "\(answer)")
            #expect(answer.components(separatedBy: "HTTP/1.").count == 2, "one answer only: \(answer)")
            let targets = recorder.requests.map(\.target)
            #expect(!targets.contains("/smuggled"), "\(targets)")
            if !request.headMayReachUpstream {
                #expect(targets.isEmpty, "\(recorder.requests.map { "\($0), host \($0.header("host") ?? "none")" })")
                #expect(recorder.connections == 0, "the upstream was not even dialled")
            }
            let stats = proxy.metrics.renderStats()
            #expect(stats.contains("outbound.4xx.malformed_request: 1"), "\(stats)")
        }
        await recorder.stop()
    }

    /// A refused request with far more bytes behind it than one read takes: the proxy half-closes after its answer
    /// and reads the rest away (a lingering close), so the client gets the 400 and an end of stream, not a reset
    /// that would destroy the answer in its socket.
    @Test(arguments: [16 << 10, 256 << 10])
    func aLargeRefusedRequestStillGetsItsAnswer(_ trailing: Int) async throws {
        let recorder = try await RawRecorder.start()
        try await ProxyHarness.withProxy(config: Self.catalog(recorder)) { proxy in
            let junk = String(repeating: "x", count: trailing)
            let answer = try await rawExchange(
                port: proxy.outboundPort,
                "POST /a HTTP/1.1\r\nHost: catalog\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n" + junk)
            #expect(answer.hasPrefix("HTTP/1.1 400 Bad Request\r\n"), "\(answer.prefix(300))")
            #expect(answer.contains("x-weft-reason: malformed_request\r\n"))
            #expect(recorder.connections == 0)
        }
        await recorder.stop()
    }

    /// The same proxy, the same raw socket and the same recorder with well-framed pipelined requests: both reach
    /// the upstream and both are answered, so the refusals above are the framing's doing, not the harness's.
    @Test func wellFramedPipelinedRequestsAllReachTheUpstream() async throws {
        let recorder = try await RawRecorder.start()
        try await ProxyHarness.withProxy(config: Self.catalog(recorder)) { proxy in
            let answer = try await rawExchange(
                port: proxy.outboundPort,
                "POST /length HTTP/1.1\r\nHost: catalog\r\nContent-Length: 5\r\n\r\nhello"
                    + "POST /chunked HTTP/1.1\r\nHost: catalog\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + "3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
                    + "GET /empty HTTP/1.1\r\nHost: catalog\r\nContent-Length: 0\r\n\r\n"
                    + "GET /last HTTP/1.1\r\nHost: catalog\r\nConnection: close\r\n\r\n")
            #expect(answer.components(separatedBy: "HTTP/1.1 200 OK\r\n").count == 5, "\(answer)")
            #expect(
                recorder.requests.map(\.target) == ["/length", "/chunked", "/empty", "/last"],
                "\(recorder.requests)")
            #expect(recorder.requests.map(\.body) == ["hello", "abcde", "", ""])
            #expect(recorder.problems.isEmpty, "\(recorder.problems)")
        }
        await recorder.stop()
    }
    // MARK: HTTP/2 to HTTP/1.1 (RFC 9113 §8.2, §8.3)

    struct HostileH2: Sendable, CustomTestStringConvertible {
        var name: String
        var fields: [(String, String)]
        var data: [String] = []
        /// The head is valid: it may go upstream before the body breaks the declared length.
        var headMayReachUpstream = false

        var testDescription: String { self.name }
    }

    static let base: [(String, String)] = [
        (":method", "POST"), (":scheme", "http"), (":authority", "catalog"), (":path", "/a"),
    ]

    static let hostileH2: [HostileH2] = [
        HostileH2(name: "connection", fields: base + [("connection", "keep-alive")]),
        HostileH2(name: "transfer-encoding", fields: base + [("transfer-encoding", "chunked")], data: ["0\r\n\r\n"]),
        HostileH2(name: "keep-alive", fields: base + [("keep-alive", "timeout=5")]),
        HostileH2(name: "proxy-connection", fields: base + [("proxy-connection", "keep-alive")]),
        HostileH2(name: "upgrade", fields: base + [("upgrade", "websocket")]),
        HostileH2(name: "te other than trailers", fields: base + [("te", "gzip")]),
        HostileH2(name: "an uppercase field name", fields: base + [("X-Upper", "1")]),
        HostileH2(name: "a pseudo-header after a field", fields: base.dropLast() + [("x-a", "1"), (":path", "/a")]),
        HostileH2(name: "an unknown pseudo-header", fields: base + [(":smuggle", "1")]),
        HostileH2(name: "a response pseudo-header", fields: base + [(":status", "200")]),
        HostileH2(name: "two :path", fields: base + [(":path", "/b")]),
        HostileH2(name: "no :method", fields: Array(base.dropFirst())),
        HostileH2(name: "no :path", fields: Array(base.dropLast())),
        HostileH2(name: "an empty :path", fields: base.dropLast() + [(":path", "")]),
        HostileH2(
            name: "CR LF in a field value",
            fields: base + [("x-value", "a\r\ncontent-length: 41\r\n\r\n" + smuggled)]),
        HostileH2(name: "a NUL in a field value", fields: base + [("x-value", "a\u{0}b")]),
        HostileH2(name: "LF in :path", fields: base.dropLast() + [(":path", "/a HTTP/1.1\n\n" + smuggled)]),
        HostileH2(
            name: "content-length other than the DATA", fields: base + [("content-length", "2")],
            data: ["0\r\n\r\n" + smuggled], headMayReachUpstream: true),
    ]

    /// Each on its own h2c connection: the stream is reset (or answered 400) and nothing reaches the HTTP/1.1
    /// upstream, where a CR/LF or a second framing would have become a request of its own.
    @Test(arguments: hostileH2)
    func h2HeaderBlocksRFC9113ForbidsNeverReachAnHTTP1Upstream(_ request: HostileH2) async throws {
        let recorder = try await RawRecorder.start()
        try await ProxyHarness.withProxy(config: Self.catalog(recorder)) { proxy in
            let responses = try await h2Exchange(
                port: proxy.outboundPort, validating: false,
                [H2Request(path: "/", authority: "catalog", data: request.data, rawFields: request.fields)])
            let status = responses.first?.status ?? -1
            #expect(status == 0 || status == 400, "\(responses)")
            #expect(!recorder.requests.map(\.target).contains("/smuggled"), "\(recorder.requests)")
            if !request.headMayReachUpstream {
                #expect(recorder.requests.isEmpty, "\(recorder.requests)")
                #expect(recorder.connections == 0, "the upstream was not even dialled")
            }
        }
        await recorder.stop()
    }
}
