/// Conversions from the config's milliseconds to the monotonic nanoseconds the state machines use.
enum Nanoseconds {
    static let perMillisecond: UInt64 = 1_000_000
    static let perSecond: UInt64 = 1_000_000_000

    /// `milliseconds` as nanoseconds; negative values are 0 and huge ones saturate.
    static func fromMilliseconds(_ milliseconds: Int) -> UInt64 {
        guard milliseconds > 0 else { return 0 }
        return self.saturatingMultiply(UInt64(milliseconds), self.perMillisecond)
    }

    static func saturatingMultiply(_ lhs: UInt64, _ rhs: UInt64) -> UInt64 {
        let (product, overflow) = lhs.multipliedReportingOverflow(by: rhs)
        return overflow ? UInt64.max : product
    }

    static func saturatingAdd(_ lhs: UInt64, _ rhs: UInt64) -> UInt64 {
        let (sum, overflow) = lhs.addingReportingOverflow(rhs)
        return overflow ? UInt64.max : sum
    }
}
