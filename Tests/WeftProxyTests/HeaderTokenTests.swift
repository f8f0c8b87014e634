import NIOHTTP1
import Testing

@testable import WeftProxy

/// The byte-level helpers behind framing, upgrades and hop-by-hop removal.
@Suite("Header tokens: comma-separated lists, whitespace and case, byte by byte")
struct HeaderTokenTests {
    @Test("list elements are trimmed, cut at parameters (and versions when asked), and empty ones skipped")
    func listElements() {
        var seen: [String] = []
        "  Keep-Alive ,, Upgrade;q=0.5 ,\tTE\t, h2c/1.0 ,".forEachListToken { token in
            seen.append(String(token))
            return true
        }
        #expect(seen == ["Keep-Alive", "Upgrade", "TE", "h2c/1.0"])

        seen = []
        "websocket/13, h2c/2 ; x=1".forEachListToken(ignoringVersion: true) { token in
            seen.append(String(token))
            return true
        }
        #expect(seen == ["websocket", "h2c"])
    }

    @Test("a list stops at the first element the body refuses")
    func stopsEarly() {
        var calls = 0
        let finished = "a, b, c".forEachListToken { token in
            calls += 1
            return token != "b"
        }
        #expect(!finished)
        #expect(calls == 2)
    }

    @Test("tokens compare ASCII case-insensitively, and only ASCII letters fold")
    func tokens() {
        #expect("Upgrade, keep-alive".containsToken("KEEP-ALIVE"))
        #expect(!"upgrades".containsToken("upgrade"))
        #expect("WebSocket/13".containsToken("websocket", ignoringVersion: true))
        #expect(!"WebSocket/13".containsToken("websocket"))
        #expect("h2c, websocket".containsOnlyTokens(["websocket", "h2c"]))
        #expect(!"h2c, spdy/3".containsOnlyTokens(["websocket", "h2c"]))
        #expect("Content-Length".equalsIgnoringASCIICase("content-length"))
        #expect(!"content-length".equalsIgnoringASCIICase("content-lengtH2"))
        // "[" is "{" less 0x20, as "A" is "a": only letters fold.
        #expect(!"a[".equalsIgnoringASCIICase("a{"))
        #expect("ÄB".equalsIgnoringASCIICase("Äb"))
        #expect(!"Äb".equalsIgnoringASCIICase("äb"), "non-ASCII letters are compared as they are")
        let substring = "xx Transfer-Encoding".dropFirst(3)
        #expect(substring.equalsIgnoringASCIICase("transfer-encoding"))
    }

    @Test("whitespace trimming takes spaces and tabs only, from both ends")
    func trimming() {
        #expect(" \t chunked \t ".trimmingHTTPWhitespace() == "chunked")
        #expect("  ".trimmingHTTPWhitespace().isEmpty)
        #expect("a b".trimmingHTTPWhitespace() == "a b")
        #expect("\r\nx\u{0B}".trimmingHTTPWhitespace() == "\r\nx\u{0B}")
    }

    @Test("hop-by-hop fields go, whatever their case, with the fields Connection names; te: trailers stays")
    func hopByHop() {
        let headers = HTTPHeaders([
            ("Connection", "close, X-Private"), ("KEEP-ALIVE", "timeout=5"), ("Proxy-Connection", "keep-alive"),
            ("TE", "trailers, deflate"), ("Transfer-Encoding", "chunked"), ("Upgrade", "h2c"), ("Trailer", "x"),
            ("HTTP2-Settings", "AAMAAABkAAQAAP__"), ("x-private", "secret"), ("Content-Length", "3"),
            ("x-kept", "1"), ("trailers", "not hop-by-hop"),
        ])
        let forwarded = HTTPHeaders(
            headers.forwardedFields(request: true, upgrade: nil, options: nil) { _, _, _ in true }.fields)
        #expect(forwarded.map(\.name) == ["x-kept", "trailers", "te"])
        #expect(forwarded["te"] == ["trailers"])
        let response = HTTPHeaders(
            headers.forwardedFields(request: false, upgrade: nil, options: nil) { _, _, _ in true }.fields)
        #expect(response["content-length"] == ["3"], "a response keeps its length")
        #expect(response["x-private"].isEmpty)
        // The same when the caller read the `Connection` options first: the named field never reaches `keep`.
        var seen: [String] = []
        let options = ConnectionOptions(headers)
        #expect(options.close && options.keepAlive == 0 && options.named == ["X-Private"])
        let again = headers.forwardedFields(request: true, upgrade: "websocket", options: options) { _, name, _ in
            seen.append(name)
            return name != "trailers"
        }
        #expect(again.fields.map(\.0) == ["x-kept", "te", "upgrade", "connection"])
        #expect(seen == ["x-kept", "trailers"])
    }
}
