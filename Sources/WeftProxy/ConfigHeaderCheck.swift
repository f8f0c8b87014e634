import ProxyConfig

/// The proxy's own check of the header values a config writes into messages (header `set`/`add`/`remove` on
/// requests and responses, path and authority rewrites, redirects), run when a config is loaded: a config that
/// slipped past the API's validation is refused with a `ProxyConfigError` (code `invalid_header`) naming the route
/// and field, and the last good config keeps serving. So no config can split a request or a response (CR, LF or
/// NUL in a value) or reframe one (a field that the proxy owns or that changes framing).
enum ConfigHeaderCheck {
    static let code = "invalid_header"

    /// Fields a config may not set, add or remove: framing, hop-by-hop, the authority, and the proxy's own.
    static let reservedNames: Set<String> = [
        "content-length", "transfer-encoding", "connection", "keep-alive", "proxy-connection", "te", "trailer",
        "upgrade", "http2-settings", "host", "expect", InboundPortHeader.name,
    ]

    /// Throws for the first unsafe value of `config`. Outbound entries equal to the one at the same position of
    /// `previous` (a config that passed, which a delta changed) are not checked again.
    static func check(_ config: ProxyConfig, previous: ProxyConfig? = nil) throws(ProxyConfigError) {
        let checked = previous?.outbound ?? []
        for (position, service) in config.outbound.enumerated() {
            if position < checked.count, checked[position] == service { continue }
            for route in service.routes {
                func place() -> String { "outbound \(service.host) route \(route.name)" }
                if let forward = route.forward {
                    try self.check(forward.requestHeaders, at: "\(place()): forward.requestHeaders")
                    try self.check(forward.responseHeaders, at: "\(place()): forward.responseHeaders")
                    for (index, backend) in forward.backends.enumerated() {
                        try self.check(
                            backend.requestHeaders, at: "\(place()): forward.backends[\(index)].requestHeaders")
                        try self.check(
                            backend.responseHeaders, at: "\(place()): forward.backends[\(index)].responseHeaders")
                    }
                    if let rewrite = forward.rewrite {
                        try self.checkValue(rewrite.path, at: "\(place()): forward.rewrite.path", allowSpace: false)
                        try self.checkValue(
                            rewrite.authority, at: "\(place()): forward.rewrite.authority", allowSpace: false)
                    }
                }
                if let redirect = route.redirect {
                    try self.checkValue(redirect.path, at: "\(place()): redirect.path", allowSpace: false)
                    try self.checkValue(redirect.authority, at: "\(place()): redirect.authority", allowSpace: false)
                    try self.checkValue(redirect.scheme, at: "\(place()): redirect.scheme", allowSpace: false)
                }
            }
        }
    }

    private static func check(
        _ operations: HeaderOperations?, at path: @autoclosure () -> String
    ) throws(ProxyConfigError) {
        guard let operations else {
            return
        }
        for (kind, values) in [("set", operations.set), ("add", operations.add)] {
            for (index, header) in values.enumerated() {
                try self.checkName(header.name, at: "\(path()).\(kind)[\(index)].name")
                try self.checkValue(header.value, at: "\(path()).\(kind)[\(index)].value", allowSpace: true)
            }
        }
        for (index, name) in operations.remove.enumerated() {
            try self.checkName(name, at: "\(path()).remove[\(index)]")
        }
    }

    /// A field name is a token (RFC 9110 §5.1), not a pseudo-header, and not one the proxy owns.
    private static func checkName(_ name: String, at path: @autoclosure () -> String) throws(ProxyConfigError) {
        guard HTTP1Head.isToken(name) else {
            throw ProxyConfigError(
                code: self.code, message: "\(path()): \(quoted(name)) is not a valid header name (RFC 9110 token)")
        }
        guard !self.reservedNames.contains(name.lowercased()) else {
            throw ProxyConfigError(
                code: self.code,
                message: "\(path()): \(quoted(name)) is set by the proxy itself (framing, hop-by-hop or authority)")
        }
    }

    /// A value has no control characters (CR, LF, NUL, ...; a tab is fine in header values), and no space where
    /// it goes into a request line or URL.
    private static func checkValue(
        _ value: String?, at path: @autoclosure () -> String, allowSpace: Bool
    ) throws(ProxyConfigError) {
        guard let value else {
            return
        }
        let safe = value.utf8.allSatisfy { byte in
            if byte == 0x7F || (byte < 0x20 && byte != 0x09) {
                return false
            }
            return allowSpace || (byte != 0x20 && byte != 0x09)
        }
        guard safe else {
            throw ProxyConfigError(
                code: self.code,
                message: "\(path()): \(quoted(value)) contains a control character (CR, LF, NUL)"
                    + (allowSpace ? "" : " or whitespace"))
        }
    }
}

/// `value` in double quotes with control characters escaped, for error messages.
private func quoted(_ value: String) -> String {
    var out = "\""
    for scalar in value.unicodeScalars {
        switch scalar {
        case "\r": out += "\\r"
        case "\n": out += "\\n"
        case "\0": out += "\\0"
        case "\"": out += "\\\""
        default:
            if scalar.value < 0x20 || scalar.value == 0x7F {
                out += "\\u{\(String(scalar.value, radix: 16))}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + "\""
}
