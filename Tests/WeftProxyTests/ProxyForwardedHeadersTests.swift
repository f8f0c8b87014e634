import NIOCore
import NIOHTTP1
import ProxyConfig
import ProxyCore
import Testing

@testable import WeftProxy

/// Issue 11 item 1: `x-forwarded-for`, `x-forwarded-proto` and `x-request-id` follow the rules of
/// `ForwardedHeaders` (README: "Forwarded headers"), seen by a raw-socket upstream.
@Suite("weft-proxy forwarded headers: x-forwarded-for, x-forwarded-proto, x-request-id")
struct ProxyForwardedHeadersTests {
    private struct Counter: RandomSource {
        var value: UInt64 = 0x0123_4567_89AB_CDEF
        mutating func next() -> UInt64 {
            self.value &+= 0x9E37_79B9_7F4A_7C15
            return self.value
        }
    }

    static func isUUIDv4(_ value: String?) -> Bool {
        guard let value else { return false }
        let bytes = Array(value.utf8)
        guard bytes.count == 36 else { return false }
        for (index, byte) in bytes.enumerated() {
            if [8, 13, 18, 23].contains(index) {
                guard byte == UInt8(ascii: "-") else { return false }
            } else {
                guard
                    (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                        || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
                else { return false }
            }
        }
        return bytes[14] == UInt8(ascii: "4")
            && [UInt8(ascii: "8"), .init(ascii: "9"), .init(ascii: "a"), .init(ascii: "b")]
                .contains(bytes[19])
    }

    @Test func outboundKeepsWhatTheAppSaysAndAddsAnID() async throws {
        let recorder = try await RawRecorder.start()
        let config = TestConfig.config(
            outbound: [TestConfig.service("catalog", routes: [TestConfig.forward(to: "a")])],
            clusters: [TestConfig.cluster("a", ports: [recorder.port], address: recorder.host)])
        try await ProxyHarness.withProxy(config: config) { proxy in
            _ = try await proxy.get("/bare", host: "catalog")
            _ = try await proxy.get("/bare-again", host: "catalog")
            _ = try await proxy.get(
                "/told", host: "catalog",
                headers: [
                    ("x-forwarded-for", "203.0.113.7"), ("x-forwarded-proto", "https"), ("x-request-id", "req-42"),
                ])
            _ = try await proxy.get(
                "/bad-id", host: "catalog", headers: [("x-request-id", String(repeating: "x", count: 129))])
            let requests = recorder.requests
            try #require(requests.count == 4, "\(requests)")
            #expect(!requests[0].has("x-forwarded-for"))
            #expect(requests[0].header("x-forwarded-proto") == "http")
            #expect(Self.isUUIDv4(requests[0].header("x-request-id")), "\(requests[0].headers)")
            #expect(Self.isUUIDv4(requests[1].header("x-request-id")))
            #expect(requests[0].header("x-request-id") != requests[1].header("x-request-id"))
            #expect(requests[2].header("x-forwarded-for") == "203.0.113.7")
            #expect(requests[2].header("x-forwarded-proto") == "https")
            #expect(requests[2].header("x-request-id") == "req-42")
            #expect(Self.isUUIDv4(requests[3].header("x-request-id")), "\(requests[3].headers)")
            #expect(requests[3].headers.filter { $0.name.lowercased() == "x-request-id" }.count == 1)
        }
        await recorder.stop()
    }

    @Test func inboundAppendsTheCallerAndAPlaintextCallerCannotClaimHTTPS() async throws {
        // (The inbound side forwards to the app on 127.0.0.1.)
        let recorder = try await RawRecorder.start(host: "127.0.0.1")
        let config = TestConfig.config(
            outbound: [], clusters: [],
            inbound: [InboundPort(port: 8080, protocol: .http1, tls: .disable, appPort: recorder.port)])
        try await ProxyHarness.withProxy(config: config) { proxy in
            _ = try await proxy.get("/bare", host: "web", port: proxy.inboundPort)
            _ = try await proxy.get(
                "/told", host: "web", port: proxy.inboundPort,
                headers: [
                    ("x-forwarded-for", "203.0.113.7, 198.51.100.1"), ("x-forwarded-proto", "https"),
                    ("x-request-id", "req-42"),
                ])
            let requests = recorder.requests
            try #require(requests.count == 2, "\(requests)")
            #expect(requests[0].header("x-forwarded-for") == "127.0.0.1")
            #expect(requests[0].header("x-forwarded-proto") == "http")
            #expect(Self.isUUIDv4(requests[0].header("x-request-id")))
            #expect(requests[1].header("x-forwarded-for") == "203.0.113.7, 198.51.100.1, 127.0.0.1")
            #expect(requests[1].header("x-forwarded-proto") == "http")
            #expect(requests[1].header("x-request-id") == "req-42")
        }
        await recorder.stop()
    }

    /// The headers a request carries upstream, without sockets.
    private static func forwarded(
        _ fields: [(String, String)], origin: ForwardedHeaders.Origin, random: inout Counter
    ) -> HTTPHeaders {
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: HTTPHeaders(fields))
        let envelope = RequestEnvelope(head, isHTTP2: false, bodyFollows: false, upgradeProtocols: [])
        return ForwardedHeaders.requestHeaders(
            head, authority: "svc:80", envelope: envelope, origin: origin, random: &random)
    }

    /// The mTLS case without sockets: a verified mesh peer's `x-forwarded-proto` stands, `https` when it sent none.
    @Test func aMeshPeersSchemeIsBelieved() throws {
        var random = Counter()
        let remote = try SocketAddress(ipAddress: "fd77::1", port: 40000)
        let told = Self.forwarded(
            [("x-forwarded-proto", "http"), ("x-request-id", "a b")],
            origin: .inbound(remote: remote, meshPeer: true), random: &random)
        #expect(told["x-forwarded-proto"] == ["http"])
        #expect(told["x-forwarded-for"] == ["fd77::1"])
        #expect(Self.isUUIDv4(told.first(name: "x-request-id")), "a space is not a valid id: \(told)")

        let silent = Self.forwarded([], origin: .inbound(remote: remote, meshPeer: true), random: &random)
        #expect(silent["x-forwarded-proto"] == ["https"])

        let plaintext = Self.forwarded(
            [("x-forwarded-proto", "https"), ("x-request-id", "one"), ("X-Request-ID", "two")],
            origin: .inbound(remote: remote, meshPeer: false), random: &random)
        #expect(plaintext["x-forwarded-proto"] == ["http"])
        #expect(plaintext["x-request-id"].count == 1)
        #expect(Self.isUUIDv4(plaintext.first(name: "x-request-id")), "two ids are replaced by one: \(plaintext)")
    }

    /// What the proxy's one pass must equal: the header operations it replaced, one after the other with NIO's own
    /// `remove`, `replaceOrAdd` and `contains` (each a pass of its own), as the proxy did until the one pass. The
    /// hop-by-hop removal is the proxy's (`hopByHop` in `HeaderTokenTests` pins it down), but it reads the
    /// `Connection` options itself here, where the proxy takes the envelope's.
    private static func reference(
        _ head: HTTPRequestHead, authority: String, envelope: RequestEnvelope, origin: ForwardedHeaders.Origin,
        random: inout Counter
    ) -> [String] {
        var headers = HTTPHeaders(
            head.headers.forwardedFields(request: true, upgrade: envelope.upgrade, options: nil) { _, name, _ in
                !envelope.expectsContinue || !name.equalsIgnoringASCIICase("expect")
            }.fields)
        headers.remove(name: "x-weft-inbound-port")
        headers.replaceOrAdd(name: "host", value: authority)
        switch origin {
        case .outbound:
            if !headers.contains(name: "x-forwarded-proto") {
                headers.add(name: "x-forwarded-proto", value: "http")
            }
        case .inbound(let remote, let meshPeer):
            if let address = remote?.ipAddress {
                let previous = headers[canonicalForm: "x-forwarded-for"].map(String.init)
                headers.remove(name: "x-forwarded-for")
                headers.add(name: "x-forwarded-for", value: (previous + [address]).joined(separator: ", "))
            }
            if meshPeer {
                if !headers.contains(name: "x-forwarded-proto") {
                    headers.add(name: "x-forwarded-proto", value: "https")
                }
            } else {
                headers.replaceOrAdd(name: "x-forwarded-proto", value: "http")
            }
        }
        let ids = headers["x-request-id"]
        if ids.count != 1 || !ForwardedHeaders.isValidRequestID(ids[0][...]) {
            headers.replaceOrAdd(name: "x-request-id", value: ForwardedHeaders.newRequestID(using: &random))
        }
        if !headers.contains(name: "traceparent") {
            headers.add(name: "traceparent", value: newTraceparent(using: &random))
        }
        headers.addFraming(envelope.framing, method: head.method)
        return headers.map { "\($0.name): \($0.value)" }
    }

    /// 2,000 requests drawn from the fields the one pass treats apart (in any case, repeated, named by
    /// `Connection`), for each origin: the same fields in the same order as the reference, and the same random
    /// draws (the ids and trace ids match).
    @Test func theOnePassEqualsTheOperationsItReplaced() throws {
        let names = [
            "Host", "host", "TE", "Connection", "keep-alive", "Upgrade", "Trailer", "Transfer-Encoding",
            "Proxy-Connection", "HTTP2-Settings", "Content-Length", "Expect", "traceparent", "X-Request-ID",
            "x-forwarded-for", "X-Forwarded-Proto", "x-weft-inbound-port", "x-private", "accept", "x-b3",
        ]
        let values = [
            "1", "close", "keep-alive, x-private", "trailers", "100-continue", "a b", "req-1", "10.0.0.1, 10.0.0.2",
            "https", "websocket", "Upgrade", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "chunked",
            "x-request-id", "", "X-Forwarded-For",
        ]
        let remote = try SocketAddress(ipAddress: "203.0.113.9", port: 1)
        let origins: [ForwardedHeaders.Origin] = [
            .outbound, .inbound(remote: remote, meshPeer: true), .inbound(remote: remote, meshPeer: false),
            .inbound(remote: nil, meshPeer: false),
        ]
        var draw = Counter(value: 42)
        var compared = 0
        for _ in 0..<500 {
            var fields: [(String, String)] = []
            for _ in 0..<Int(draw.next() % 9) {
                fields.append(
                    (names[Int(draw.next() % UInt64(names.count))], values[Int(draw.next() % UInt64(values.count))]))
            }
            let method: HTTPMethod = draw.next() % 2 == 0 ? .GET : .POST
            let head = HTTPRequestHead(version: .http1_1, method: method, uri: "/", headers: HTTPHeaders(fields))
            let envelope = RequestEnvelope(
                head, isHTTP2: false, bodyFollows: method == .POST, upgradeProtocols: ["websocket"])
            for origin in origins {
                var mine = Counter(value: 7)
                var theirs = Counter(value: 7)
                let forwarded = ForwardedHeaders.requestHeaders(
                    head, authority: "svc.ns:8080", envelope: envelope, origin: origin, random: &mine)
                let expected = Self.reference(
                    head, authority: "svc.ns:8080", envelope: envelope, origin: origin, random: &theirs)
                #expect(forwarded.map { "\($0.name): \($0.value)" } == expected, "\(fields) from \(origin)")
                compared += 1
            }
        }
        #expect(compared == 2000)
    }

    @Test func requestIDsAreVersion4UUIDs() {
        var random = Counter()
        let ids = (0..<100).map { _ in ForwardedHeaders.newRequestID(using: &random) }
        #expect(ids.allSatisfy(Self.isUUIDv4), "\(ids.prefix(3))")
        #expect(Set(ids).count == 100)
    }

    /// W3C Trace Context: `00-<32 hex trace id>-<16 hex span id>-01`, lowercase, the IDs the random source gave.
    @Test func newTraceparentsCarryTheRandomIDsInW3CForm() {
        struct Fixed: RandomSource {
            var values: [UInt64]
            mutating func next() -> UInt64 { self.values.removeFirst() }
        }
        var fixed = Fixed(values: [0x0AF7_6519_16CD_43DD, 0x8448_EB21_1C80_319C, 0xB7AD_6B71_6920_3330])
        #expect(newTraceparent(using: &fixed) == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        // An all-zero trace ID is invalid: the high half becomes 1; the span ID is never zero.
        var zeros = Fixed(values: [0, 0, 0])
        #expect(newTraceparent(using: &zeros) == "00-00000000000000010000000000000000-0000000000000001-01")
        var random = Counter()
        let parents = (0..<100).map { _ in newTraceparent(using: &random) }
        let form = /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/
        #expect(parents.allSatisfy { $0.wholeMatch(of: form) != nil }, "\(parents.prefix(3))")
        #expect(Set(parents).count == 100)
    }
}
