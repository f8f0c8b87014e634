import Testing
import WeftAPI

@Suite("Go durations")
struct DurationTests {
    struct Valid: Sendable, CustomTestStringConvertible {
        let text: String
        let nanoseconds: Int64
        let canonical: String
        var testDescription: String { self.text }
    }

    static let valid: [Valid] = [
        Valid(text: "2s", nanoseconds: 2_000_000_000, canonical: "2s"),
        Valid(text: "500ms", nanoseconds: 500_000_000, canonical: "500ms"),
        Valid(text: "1m30s", nanoseconds: 90_000_000_000, canonical: "1m30s"),
        Valid(text: "90s", nanoseconds: 90_000_000_000, canonical: "1m30s"),
        Valid(text: "1.5s", nanoseconds: 1_500_000_000, canonical: "1.5s"),
        Valid(text: ".5s", nanoseconds: 500_000_000, canonical: "500ms"),
        Valid(text: "1.s", nanoseconds: 1_000_000_000, canonical: "1s"),
        Valid(text: "100us", nanoseconds: 100_000, canonical: "100us"),
        Valid(text: "100µs", nanoseconds: 100_000, canonical: "100us"),
        Valid(text: "1.5ms", nanoseconds: 1_500_000, canonical: "1.5ms"),
        Valid(text: "250ns", nanoseconds: 250, canonical: "250ns"),
        Valid(text: "1h", nanoseconds: 3_600_000_000_000, canonical: "1h"),
        Valid(text: "1h0m5s", nanoseconds: 3_605_000_000_000, canonical: "1h5s"),
        Valid(text: "2h45m", nanoseconds: 9_900_000_000_000, canonical: "2h45m"),
        Valid(text: "1m0.25s", nanoseconds: 60_250_000_000, canonical: "1m0.25s"),
        Valid(text: "0s", nanoseconds: 0, canonical: "0s"),
        Valid(text: "0", nanoseconds: 0, canonical: "0s"),
        Valid(text: "2562047h47m16.854775807s", nanoseconds: Int64.max, canonical: "2562047h47m16.854775807s"),
    ]

    @Test(arguments: DurationTests.valid)
    func parses(_ valid: Valid) throws {
        let duration = try #require(parseDuration(valid.text))
        #expect(duration == .nanoseconds(valid.nanoseconds))
        #expect(formatDuration(duration) == valid.canonical)
        #expect(parseDuration(formatDuration(duration)) == duration)
    }

    @Test(arguments: [
        "", "5", "-1s", "+1s", "1x", "s", ".s", "1.5", "2 s", " 2s", "2s ", "1h30", "1S", "1e3s", "--1s",
        "2562047h47m16.854775808s", "9223372036854775808ns", "99999999999999999999h", "3000000h",
    ])
    func rejects(_ text: String) {
        #expect(parseDuration(text) == nil)
    }

    @Test func formatsComponentsAndNegatives() {
        #expect(formatDuration(.milliseconds(1_500)) == "1.5s")
        #expect(formatDuration(.seconds(3_600 + 60)) == "1h1m")
        #expect(formatDuration(.microseconds(1)) == "1us")
        #expect(formatDuration(.seconds(-2)) == "-2s")
        #expect(formatDuration(.zero) == "0s")
    }
}
