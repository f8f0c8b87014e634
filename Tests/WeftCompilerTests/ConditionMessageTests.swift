import Testing

@testable import WeftCompiler

@Suite("Condition messages")
struct ConditionMessageTests {
    @Test("Short lists are joined whole")
    func short() {
        #expect(ConditionMessage.join(["a: bad", "b: worse"]) == "a: bad; b: worse")
        #expect(ConditionMessage.join([]) == "")
    }

    @Test(
        "Long lists keep whole parts within the limit and say how many were left out",
        arguments: [(2000, 32_768), (10, 100), (3, 60)])
    func long(count: Int, limit: Int) throws {
        let parts = (0..<count).map { "spec.http[\($0)].timeout: invalid duration \"7x\"" }
        let message = ConditionMessage.join(parts, limit: limit)
        #expect(message.utf8.count <= limit)
        let match = try #require(message.firstMatch(of: #/; … and (\d+) more$/#))
        let kept = message.prefix(upTo: match.range.lowerBound).components(separatedBy: "; ")
        #expect(kept == Array(parts.prefix(kept.count)))
        #expect(kept.count + (Int(match.1) ?? 0) == count)
    }

    @Test("A single part too long is cut on a character boundary, never inside a multi-byte character")
    func cutsOnCharacterBoundary() {
        let part = String(repeating: "é", count: 100)  // 2 bytes each
        let message = ConditionMessage.join([part, "next"], limit: 51)
        #expect(message.utf8.count <= 51)
        #expect(message.hasSuffix("…; … and 1 more"))
        #expect(message.allSatisfy { $0 == "é" || "…; and1more".contains($0) })
        let alone = ConditionMessage.join([part], limit: 11)
        #expect(alone == "éééé…")
    }
}
