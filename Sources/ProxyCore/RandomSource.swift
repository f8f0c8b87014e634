/// A source of random bits for the pickers and the retry backoff.
///
/// The pure layer never reads randomness directly: the proxy passes a `SystemRandomSource`, tests a
/// `SeededRandomSource`, so every pick and every backoff is reproducible in a test. Call sites take it
/// as a generic `inout` parameter, so there is no existential box and no allocation per call.
public protocol RandomSource {
    /// Returns 64 uniformly distributed random bits.
    mutating func next() -> UInt64
}

extension RandomSource {
    /// A uniform value in `0..<upperBound`, without modulo bias (Lemire's method); 0 when `upperBound` is 0.
    public mutating func next(below upperBound: UInt64) -> UInt64 {
        guard upperBound > 0 else { return 0 }
        var product = self.next().multipliedFullWidth(by: upperBound)
        if product.low < upperBound {
            let threshold = (0 &- upperBound) % upperBound
            while product.low < threshold {
                product = self.next().multipliedFullWidth(by: upperBound)
            }
        }
        return product.high
    }

    /// A uniform index in `0..<count`; 0 when `count` is 0 or negative.
    public mutating func nextIndex(below count: Int) -> Int {
        guard count > 0 else { return 0 }
        return Int(truncatingIfNeeded: self.next(below: UInt64(count)))
    }
}

/// The production source: the system's cryptographically secure generator.
public struct SystemRandomSource: RandomSource, Sendable {
    private var generator = SystemRandomNumberGenerator()

    /// Creates a source reading the system generator.
    public init() {}

    /// Returns 64 random bits from the system generator.
    public mutating func next() -> UInt64 {
        self.generator.next()
    }
}

/// A deterministic source for tests and simulations (SplitMix64): the same seed gives the same sequence.
public struct SeededRandomSource: RandomSource, Sendable {
    private var state: UInt64

    /// Creates a source whose sequence is fixed by `seed`.
    public init(seed: UInt64) {
        self.state = seed
    }

    /// Returns the next 64 bits of the sequence.
    public mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
