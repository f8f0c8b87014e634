// The syntax of names: DNS labels and subdomains, Service hosts, HTTP tokens, Kubernetes labels.
// Each `...Problem` function returns the message for an invalid value, or nil when it is valid.

private func isLowerAlphanumeric(_ byte: UInt8) -> Bool {
    (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
}

private func isAlphanumeric(_ byte: UInt8) -> Bool {
    isLowerAlphanumeric(byte) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
}

/// RFC 1123 label: 1-63 of `a-z`, `0-9`, `-`, starting and ending with a letter or digit.
func isDNS1123Label(_ value: String) -> Bool {
    isDNS1123Label(Array(value.utf8)[...])
}

private func isDNS1123Label(_ bytes: ArraySlice<UInt8>) -> Bool {
    guard let first = bytes.first, let last = bytes.last, bytes.count <= 63 else { return false }
    return isLowerAlphanumeric(first) && isLowerAlphanumeric(last)
        && bytes.allSatisfy { isLowerAlphanumeric($0) || $0 == UInt8(ascii: "-") }
}

/// RFC 1123 subdomain: at most 253 characters, dot-separated DNS labels.
func isDNS1123Subdomain(_ value: String) -> Bool {
    let bytes = Array(value.utf8)
    guard !bytes.isEmpty, bytes.count <= 253 else { return false }
    return bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false).allSatisfy(isDNS1123Label)
}

/// Why `host` is not a Service host (`catalog`, `catalog.shop`, `catalog.shop.svc.cluster.local`), or nil.
func hostProblem(_ host: String) -> String? {
    if host.isEmpty { return "must be set" }
    if isDNS1123Subdomain(host) { return nil }
    if host.contains("*") { return "wildcards are not allowed, got \(quoted(host))" }
    if host.contains(":") { return "must not include a port, got \(quoted(host))" }
    if isDNS1123Subdomain(host.lowercased()) { return "must be lowercase, got \(quoted(host))" }
    return "must be a DNS name such as catalog, catalog.shop or catalog.shop.svc.cluster.local, got \(quoted(host))"
}

/// `tchar` of RFC 9110 other than letters and digits.
private let tokenSymbols = Set("!#$%&'*+-.^_`|~".utf8)

/// Why `name` is not a lowercase HTTP header name, or nil.
func headerNameProblem(_ name: String) -> String? {
    if name.isEmpty { return "header name must not be empty" }
    let bytes = Array(name.utf8)
    if bytes.allSatisfy({ isLowerAlphanumeric($0) || tokenSymbols.contains($0) }) { return nil }
    if bytes.allSatisfy({ isAlphanumeric($0) || tokenSymbols.contains($0) }) {
        return "header name must be lowercase, got \(quoted(name))"
    }
    return "header name may contain only a-z, 0-9 and !#$%&'*+-.^_`|~, got \(quoted(name))"
}

/// An HTTP token with no lowercase letters, such as `GET` or `PURGE`.
func isUppercaseToken(_ value: String) -> Bool {
    let bytes = Array(value.utf8)
    return !bytes.isEmpty
        && bytes.allSatisfy { byte in
            (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || tokenSymbols.contains(byte)
        }
}

/// 1-63 of `A-Za-z0-9-_.`, starting and ending with a letter or digit.
private func isQualifiedNamePart(_ bytes: ArraySlice<UInt8>) -> Bool {
    guard let first = bytes.first, let last = bytes.last, bytes.count <= 63 else { return false }
    return isAlphanumeric(first) && isAlphanumeric(last)
        && bytes.allSatisfy { byte in
            isAlphanumeric(byte) || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
        }
}

/// Why `key` is not a label key (`app`, `app.kubernetes.io/name`), or nil.
func labelKeyProblem(_ key: String) -> String? {
    let parts = Array(key.utf8).split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
    let valid: Bool
    switch parts.count {
    case 1: valid = isQualifiedNamePart(parts[0])
    case 2: valid = isDNS1123Subdomain(String(decoding: parts[0], as: UTF8.self)) && isQualifiedNamePart(parts[1])
    default: valid = false
    }
    if valid { return nil }
    return "label key must be a name of letters, digits, '-', '_' and '.' (at most 63 characters), "
        + "optionally prefixed by a DNS subdomain and '/', got \(quoted(key))"
}

/// Why `value` is not a label value, or nil. The empty value is valid.
func labelValueProblem(_ value: String) -> String? {
    if value.isEmpty || isQualifiedNamePart(Array(value.utf8)[...]) { return nil }
    return "label value must be at most 63 letters, digits, '-', '_' and '.', starting and ending with a "
        + "letter or digit, got \(quoted(value))"
}
