// What route configuration may write into a message: header names the proxy leaves to the user, and values that
// cannot split a header block or a request line. crds/virtualservices.weft.dev.yaml states the same rules (CEL on
// the header maps and `remove` items, `pattern` on values); CRDRuleTests checks that both agree.

/// Header names the proxy manages itself, so route `headers` may not set, add or remove them: the message framing
/// (`content-length`, `transfer-encoding`), the hop-by-hop fields of RFC 9110 §7.6.1 that the proxy strips and
/// writes per connection (HTTP/2 forbids them outright), and the authority (`host`; use `rewrite.authority`).
/// Besides these, pseudo-headers (`:authority`, `:path`, ...) and the `x-weft-` prefix are reserved.
let proxyManagedHeaderNames = [
    "connection", "content-length", "host", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
    "upgrade",
]

/// The prefix of the headers the proxy itself reads or writes (`x-weft-reason`, `x-weft-inbound-port`).
let proxyHeaderPrefix = "x-weft-"

/// Why route `headers` may not touch `name` (compared in lowercase), or nil when it may.
func managedHeaderProblem(_ name: String) -> String? {
    let lowercased = name.lowercased()
    if lowercased.hasPrefix(":") {
        return "\(quoted(name)) is a pseudo-header: the proxy writes it (change the path or authority with rewrite)"
    }
    if lowercased == "host" {
        return "\"host\" is managed by the proxy: change the authority with rewrite.authority"
    }
    if proxyManagedHeaderNames.contains(lowercased) {
        return "\(quoted(name)) is managed by the proxy (message framing and hop-by-hop headers), "
            + "routes may not set, add or remove it"
    }
    if lowercased.hasPrefix(proxyHeaderPrefix) {
        return "\(quoted(name)) is reserved for the proxy (the x-weft- prefix)"
    }
    return nil
}

private func isCRLFOrNUL(_ byte: UInt8) -> Bool {
    byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\n") || byte == 0
}

/// Why `value` cannot be a header value (it contains CR, LF or NUL, which would end the field), or nil.
func headerValueProblem(_ value: String) -> String? {
    if value.utf8.contains(where: isCRLFOrNUL) {
        return "header value must not contain CR, LF or NUL, got \(quoted(value))"
    }
    return nil
}

/// Why `value` cannot go into a request target, a `Location` or a `Host` (a URI or an authority): it contains a
/// space or a control character (CR, LF and NUL among them), or nil.
func uriTextProblem(_ value: String) -> String? {
    if value.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F }) {
        return "must not contain spaces or control characters (CR, LF, NUL, ...), got \(quoted(value))"
    }
    return nil
}

extension FieldErrors {
    /// A header name that route `headers` may write: not managed by the proxy, and a lowercase token.
    mutating func checkWritableHeaderName(_ name: String, at path: String) {
        if let problem = managedHeaderProblem(name) {
            self.add(path, problem)
        } else {
            self.checkHeaderName(name, at: path)
        }
    }

    mutating func checkHeaderValue(_ value: String, at path: String) {
        if let problem = headerValueProblem(value) {
            self.add(path, problem)
        }
    }

    mutating func checkURIText(_ value: String, at path: String) {
        if let problem = uriTextProblem(value) {
            self.add(path, problem)
        }
    }
}
