// Go-style durations (`time.ParseDuration`), as written in Weft resources: `2s`, `500ms`, `1m30s`,
// `1.5s`, `100us`, `1h`.

/// Parses a Go-style duration: one or more decimal numbers, each with an optional fraction and a
/// required unit (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`), e.g. `1m30s` or `1.5s`. `0` alone is accepted,
/// as Go does.
///
/// Returns `nil` for an empty string, a number without a unit (`5`), a negative or signed duration
/// (`-1s`), an unknown unit (`1x`) or a value beyond `Int64.max` nanoseconds (about 292 years).
public func parseDuration(_ text: String) -> Duration? {
    guard let nanoseconds = parseDurationNanoseconds(text) else { return nil }
    return .nanoseconds(nanoseconds)
}

/// Formats a duration canonically, in a form `parseDuration` reads back: `0s`, `250ns`, `100us`,
/// `1.5ms`, `500ms`, `2s`, `1.5s`, `1m30s`, `1h`, `1h5s`. Zero components are left out (Go would write
/// `1h0m5s`); sub-nanosecond precision is dropped.
public func formatDuration(_ duration: Duration) -> String {
    let (seconds, attoseconds) = duration.components
    let (scaled, overflow) = seconds.multipliedReportingOverflow(by: nanosecondsPerSecond)
    let (total, overflow2) = scaled.addingReportingOverflow(attoseconds / 1_000_000_000)
    if overflow || overflow2 {
        return "\(seconds)s"
    }
    if total < 0 {
        // `Int64.min` has no positive counterpart; it is one nanosecond off at worst.
        return "-" + formatNanoseconds(UInt64(total.magnitude))
    }
    return formatNanoseconds(UInt64(total))
}

private let nanosecondsPerSecond: Int64 = 1_000_000_000

/// The nanoseconds in one of each unit Go accepts.
private func unitNanoseconds(_ unit: ArraySlice<UInt8>) -> UInt64? {
    switch Array(unit) {
    case Array("ns".utf8): 1
    case Array("us".utf8), Array("µs".utf8), Array("μs".utf8): 1_000
    case Array("ms".utf8): 1_000_000
    case Array("s".utf8): 1_000_000_000
    case Array("m".utf8): 60_000_000_000
    case Array("h".utf8): 3_600_000_000_000
    default: nil
    }
}

/// Go's algorithm, without the sign: the total must fit in `Int64` nanoseconds.
private func parseDurationNanoseconds(_ text: String) -> Int64? {
    let bytes = Array(text.utf8)
    if bytes.isEmpty { return nil }
    if text == "0" { return 0 }
    let limit = UInt64(Int64.max)
    var total: UInt64 = 0
    var index = 0
    func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    while index < bytes.count {
        // The integer part.
        var whole: UInt64 = 0
        var sawDigits = false
        while index < bytes.count, isDigit(bytes[index]) {
            let digit = UInt64(bytes[index] - UInt8(ascii: "0"))
            guard whole <= (limit - digit) / 10 else { return nil }
            whole = whole * 10 + digit
            sawDigits = true
            index += 1
        }
        // The fraction: digits beyond what fits are dropped, as in Go.
        var fraction: UInt64 = 0
        var scale: Double = 1
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            var overflowed = false
            while index < bytes.count, isDigit(bytes[index]) {
                let digit = UInt64(bytes[index] - UInt8(ascii: "0"))
                sawDigits = true
                index += 1
                if overflowed || fraction > (limit - digit) / 10 {
                    overflowed = true
                    continue
                }
                fraction = fraction * 10 + digit
                scale *= 10
            }
        }
        guard sawDigits else { return nil }
        // The unit: everything up to the next number.
        let unitStart = index
        while index < bytes.count, bytes[index] != UInt8(ascii: "."), !isDigit(bytes[index]) {
            index += 1
        }
        guard index > unitStart, let unit = unitNanoseconds(bytes[unitStart..<index]) else { return nil }
        guard whole <= limit / unit else { return nil }
        var value = whole * unit
        if fraction > 0 {
            let extra = Double(fraction) * (Double(unit) / scale)
            guard extra < Double(limit) else { return nil }
            let (sum, overflow) = value.addingReportingOverflow(UInt64(extra))
            guard !overflow, sum <= limit else { return nil }
            value = sum
        }
        let (sum, overflow) = total.addingReportingOverflow(value)
        guard !overflow, sum <= limit else { return nil }
        total = sum
    }
    return Int64(total)
}

private func formatNanoseconds(_ nanoseconds: UInt64) -> String {
    if nanoseconds == 0 { return "0s" }
    if nanoseconds < 1_000 { return "\(nanoseconds)ns" }
    if nanoseconds < 1_000_000 { return decimal(nanoseconds, unit: 1_000) + "us" }
    if nanoseconds < 1_000_000_000 { return decimal(nanoseconds, unit: 1_000_000) + "ms" }
    let hours = nanoseconds / 3_600_000_000_000
    let minutes = nanoseconds % 3_600_000_000_000 / 60_000_000_000
    let rest = nanoseconds % 60_000_000_000
    var text = ""
    if hours > 0 { text += "\(hours)h" }
    if minutes > 0 { text += "\(minutes)m" }
    if rest > 0 { text += decimal(rest, unit: 1_000_000_000) + "s" }
    return text
}

/// `value / unit` as a decimal without trailing zeros: `decimal(1_500, unit: 1_000)` is `1.5`.
private func decimal(_ value: UInt64, unit: UInt64) -> String {
    let whole = value / unit
    let remainder = value % unit
    if remainder == 0 { return "\(whole)" }
    let width = String(unit).count - 1
    var digits = String(remainder)
    digits = String(repeating: "0", count: width - digits.count) + digits
    while digits.last == "0" { digits.removeLast() }
    return "\(whole).\(digits)"
}
