import NIOHTTP1

/// How a request's body is delimited on the upstream hop. The proxy always frames a forwarded request itself
/// (RFC 9112 §6): the downstream's `content-length`/`transfer-encoding` never pass through as they came, so a body
/// cannot reach a pooled HTTP/1.1 upstream unframed (where its bytes would read as the next request).
enum RequestFraming: Hashable {
    /// No body: nothing is sent (`content-length: 0` for POST, PUT and PATCH, whose semantics expect a body).
    case none
    /// `content-length: <value>` (validated digits).
    case contentLength(String)
    /// `transfer-encoding: chunked`.
    case chunked
    /// Framing the proxy cannot forward safely: answer with this status and close the connection.
    case invalid(status: Int)
}

/// What the proxy reads from a request head before routing it: how its body is framed, whether it is a protocol
/// upgrade the listener allows, whether it waits for `100 Continue`, and its `Connection` options. Computed in one
/// pass over the fields, without allocating (unless `Connection` names fields).
struct RequestEnvelope: Hashable {
    var framing: RequestFraming
    /// The `Upgrade` value to forward (an allowed protocol), nil when the request is no upgrade to tunnel.
    var upgrade: String?
    /// `Expect: 100-continue` on an HTTP/1.1 request: the proxy answers `100 Continue` itself once it forwards.
    var expectsContinue: Bool
    /// An upgrade to a protocol the listener does not allow (`h2c`, ...): forwarded as a plain request without
    /// its `Upgrade`, and the connection closes after the response (NIO's decoder stops parsing after an upgrade
    /// request, and nothing after it may bypass routing).
    var refusedUpgrade: Bool
    /// What the request's `Connection` fields say (whether the client keeps the connection, the fields to drop).
    var connection: ConnectionOptions

    /// - Parameters:
    ///   - isHTTP2: the request came on an HTTP/2 stream (no upgrades; framing from DATA frames).
    ///   - bodyFollows: HTTP/2 without `content-length`: whether DATA follows the HEADERS (nil: HTTP/1.x).
    ///   - upgradeProtocols: the protocols an HTTP/1.1 upgrade may switch to (lowercase).
    init(_ head: HTTPRequestHead, isHTTP2: Bool, bodyFollows: Bool?, upgradeProtocols: [String]) {
        var codings = 0
        var chunked = false
        var chunkedAlone = false
        var lengths = 0
        var hosts = 0
        var length: String?
        var connectionUpgrade = false
        var upgrade: String?
        var expectsContinue = false
        var connection = ConnectionOptions()
        for field in head.headers {
            switch ForwardingField(field.name) {
            case .transferEncoding:
                codings += 1
                // The last field's last coding decides whether the body is chunked (RFC 9112 §6.1).
                let value = field.value
                let comma = value.lastIndex(of: ",")
                let last = comma.map { value[value.index(after: $0)...] } ?? value[...]
                chunked = last.trimmingHTTPWhitespace().equalsIgnoringASCIICase("chunked")
                chunkedAlone = chunked && comma == nil
            case .host:
                hosts += 1
            case .contentLength:
                lengths += 1
                length = field.value
            case .connection:
                connection.read(field.value)
                connectionUpgrade = connectionUpgrade || field.value.containsToken("upgrade")
            case .upgrade:
                upgrade = field.value
            case .expect:
                expectsContinue = field.value.trimmingHTTPWhitespace().equalsIgnoringASCIICase("100-continue")
            default:
                break
            }
        }
        self.connection = connection
        self.expectsContinue = expectsContinue && !isHTTP2 && head.version == .http1_1
        self.upgrade = nil
        if !isHTTP2, head.version.major == 1, connectionUpgrade, let upgrade,
            upgrade.containsOnlyTokens(upgradeProtocols)
        {
            self.upgrade = upgrade
        }
        self.refusedUpgrade = !isHTTP2 && connectionUpgrade && upgrade != nil && self.upgrade == nil
        if !isHTTP2, hosts > 1 || (hosts == 0 && head.version == .http1_1) {
            // RFC 9112 §3.2: exactly one Host in HTTP/1.1, at most one in HTTP/1.0; a proxy that routes on one and an
            // upstream that reads the other would disagree on the request's target.
            self.framing = .invalid(status: 400)
        } else if head.method == .TRACE {
            // A TRACE has no body (RFC 9110 §9.3.8): whatever the client sends after the head is dropped.
            self.framing = .none
        } else if codings > 0 {
            // RFC 9112 §6.1: with Content-Length too, on HTTP/1.0, or when chunked is not the final coding, the body's
            // end cannot be known: 400. Chunked after other codings (`gzip, chunked`) is framed but carries a coding
            // the proxy does not implement: 501. Only `chunked` alone is forwarded.
            if lengths > 0 || !chunked || (!isHTTP2 && head.version.minor == 0) {
                self.framing = .invalid(status: 400)
            } else {
                self.framing = codings == 1 && chunkedAlone ? .chunked : .invalid(status: 501)
            }
        } else if lengths > 0 {
            if lengths == 1, let length, !length.isEmpty, length.utf8.count <= 18,
                length.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
            {
                self.framing = .contentLength(length)
            } else {
                self.framing = .invalid(status: 400)
            }
        } else {
            self.framing = bodyFollows == true ? .chunked : .none
        }
    }

    /// Whether body parts are forwarded (a request framed `none` sends none, even if the client did).
    var forwardsBody: Bool {
        switch self.framing {
        case .none, .invalid: false
        case .contentLength, .chunked: true
        }
    }
}

extension HTTPRequestHead {
    /// An HTTP/2 request whose framing the HTTP/2 codec left open: GET, HEAD or DELETE without `content-length`
    /// (for other methods it adds `content-length: 0` or `transfer-encoding: chunked` from END_STREAM itself).
    var awaitsBodyKnowledge: Bool {
        (self.method == .GET || self.method == .HEAD || self.method == .DELETE)
            && !self.headers.contains(name: "content-length") && !self.headers.contains(name: "transfer-encoding")
    }
}

extension HTTPHeaders {
    /// Adds the framing fields for `framing` (after hop-by-hop removal took the downstream's away).
    mutating func addFraming(_ framing: RequestFraming, method: HTTPMethod) {
        switch framing {
        case .contentLength(let length):
            self.add(name: "content-length", value: length)
        case .chunked:
            self.add(name: "transfer-encoding", value: "chunked")
        case .none:
            if method == .POST || method == .PUT || method == .PATCH {
                self.add(name: "content-length", value: "0")
            }
        case .invalid:
            break
        }
    }
}

// MARK: - Allocation-free token helpers

// They work on UTF-8 bytes: HTTP's tokens, separators and whitespace are ASCII, and walking `Character`s (grapheme
// breaking) cost more than the rest of the header handling together.

extension StringProtocol where SubSequence == Substring {
    /// ASCII case-insensitive equality (header names and tokens), without lowercasing copies.
    func equalsIgnoringASCIICase(_ other: some StringProtocol) -> Bool {
        let contiguous = self.utf8.withContiguousStorageIfAvailable { mine in
            other.utf8.withContiguousStorageIfAvailable { theirs in
                asciiCaseInsensitiveEqual(mine, theirs)
            }
        }
        if let contiguous, let equal = contiguous {
            return equal
        }
        guard self.utf8.count == other.utf8.count else {
            return false
        }
        return zip(self.utf8, other.utf8).allSatisfy { asciiLower($0) == asciiLower($1) }
    }

    /// Without leading and trailing spaces and tabs.
    func trimmingHTTPWhitespace() -> SubSequence {
        let bytes = self.utf8
        var start = bytes.startIndex
        while start < bytes.endIndex, isHTTPWhitespace(bytes[start]) {
            bytes.formIndex(after: &start)
        }
        // Forward to the end (a generic UTF-8 view only walks forward), remembering where the last non-blank ends.
        var end = start
        var index = start
        while index < bytes.endIndex {
            let byte = bytes[index]
            bytes.formIndex(after: &index)
            if !isHTTPWhitespace(byte) {
                end = index
            }
        }
        return self[start..<end]
    }

    /// Whether this comma-separated list (a `Connection`, `TE` or `Upgrade` value) holds `token`, compared
    /// case-insensitively; parameters (`;q=0.5`) and, with `ignoringVersion`, a `/version` are ignored.
    func containsToken(_ token: some StringProtocol, ignoringVersion: Bool = false) -> Bool {
        !self.forEachListToken(ignoringVersion: ignoringVersion) { !$0.equalsIgnoringASCIICase(token) }
    }

    /// Whether every element of this comma-separated list is one of `tokens` (ignoring `/version`).
    func containsOnlyTokens(_ tokens: [String]) -> Bool {
        self.forEachListToken(ignoringVersion: true) { name in
            tokens.contains { name.equalsIgnoringASCIICase($0) }
        }
    }

    /// Calls `body` with each non-empty element of this comma-separated list (trimmed, without parameters), until
    /// it returns false. Returns whether every call returned true. Does not allocate.
    @discardableResult
    func forEachListToken(ignoringVersion: Bool = false, _ body: (Substring) -> Bool) -> Bool {
        let list = self[...]
        let utf8 = list.utf8
        // The elements' byte ranges come from the contiguous bytes (what native strings are); the substrings are cut
        // only for the elements `body` sees.
        let contiguous = utf8.withContiguousStorageIfAvailable { bytes -> Bool in
            var position = 0
            while position < bytes.count {
                var index = position
                var end = -1
                while index < bytes.count, bytes[index] != UInt8(ascii: ",") {
                    let byte = bytes[index]
                    if end < 0, byte == UInt8(ascii: ";") || (ignoringVersion && byte == UInt8(ascii: "/")) {
                        end = index
                    }
                    index += 1
                }
                var start = position
                if end < 0 {
                    end = index
                }
                while start < end, isHTTPWhitespace(bytes[start]) {
                    start += 1
                }
                while end > start, isHTTPWhitespace(bytes[end - 1]) {
                    end -= 1
                }
                if start < end {
                    let lower = utf8.index(utf8.startIndex, offsetBy: start)
                    let upper = utf8.index(lower, offsetBy: end - start)
                    if !body(list[lower..<upper]) {
                        return false
                    }
                }
                position = index + 1
            }
            return true
        }
        if let contiguous {
            return contiguous
        }
        // A bridged string (never on Linux): the same walk over a native copy, which is contiguous.
        var native = String(list)
        native.makeContiguousUTF8()
        return native.forEachListToken(ignoringVersion: ignoringVersion, body)
    }
}

/// ASCII case-insensitive equality of two byte strings.
private func asciiCaseInsensitiveEqual(
    _ first: UnsafeBufferPointer<UInt8>, _ second: UnsafeBufferPointer<UInt8>
) -> Bool {
    guard first.count == second.count else {
        return false
    }
    for index in first.indices {
        let (a, b) = (first[index], second[index])
        if a != b, asciiLower(a) != asciiLower(b) {
            return false
        }
    }
    return true
}

@inline(__always)
private func isHTTPWhitespace(_ byte: UInt8) -> Bool {
    byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t")
}

@inline(__always)
private func asciiLower(_ byte: UInt8) -> UInt8 {
    byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
}
