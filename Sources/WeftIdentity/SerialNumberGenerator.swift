import X509

/// Where certificate serial numbers come from: random 128-bit positive integers in production, a fixed or
/// counting source in tests.
///
/// RFC 5280 §4.1.2.2 wants serials unique per CA, positive and at most 20 octets; CA/Browser Forum practice
/// is at least 64 bits of randomness. ``random`` draws 128 bits.
public struct SerialNumberGenerator: Sendable {
    private let draw: @Sendable () -> [UInt8]

    /// A generator that returns the serial made from `bytes()`: an unsigned big-endian value of which the last
    /// 16 octets are used (0 becomes 1); it is always encoded as a positive INTEGER.
    public init(_ bytes: @escaping @Sendable () -> [UInt8]) {
        self.draw = bytes
    }

    /// 128 random bits from the system's cryptographically secure generator: the production source, passed in
    /// by the caller so that the pure API reads no randomness of its own.
    public static var random: SerialNumberGenerator {
        SerialNumberGenerator {
            var generator = SystemRandomNumberGenerator()
            return (0..<16).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        }
    }

    /// The next serial number.
    public func next() -> Certificate.SerialNumber {
        Self.serial(from: draw())
    }

    /// A non-zero serial of at most 128 bits from `bytes`. swift-certificates keeps the magnitude and adds the
    /// sign octet when it encodes, so the DER INTEGER is positive and at most 17 octets.
    static func serial(from bytes: [UInt8]) -> Certificate.SerialNumber {
        let value = Array(bytes.suffix(16).drop { $0 == 0 })
        return Certificate.SerialNumber(bytes: value.isEmpty ? [1] : value)
    }
}
