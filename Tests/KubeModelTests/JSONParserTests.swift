import Foundation
import KubeModel
import Testing

@Suite("JSONParser")
struct JSONParserTests {
    @Test(
        "parses what JSONSerialization parses, to the same values",
        arguments: [
            #"{"a": [1, -2, 3.5, 1e3, -0.25e-2, true, false, null, "x\"y\\z\/\n\u00e9\ud83d\ude00"], "b": {}}"#,
            #"[]"#, #"  "text"  "#, #"9223372036854775807"#, #"-9223372036854775808"#, #"{"nested": [[[{}]]]}"#,
        ])
    func parses(_ text: String) throws {
        let parsed = try JSONParser.parse(Array(text.utf8))
        let reference = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
        #expect(parsed == reference)
    }

    @Test("keeps integers and doubles apart")
    func numbers() throws {
        #expect(
            try JSONParser.parse(Array("[1, 1.5, 1e2, 12345678901234]".utf8))
                == .array([.int(1), .double(1.5), .int(100), .int(12_345_678_901_234)]))
    }

    @Test(
        "rejects malformed input with the byte offset",
        arguments: [
            ("", 0), ("{", 1), (#"{"a" 1}"#, 5), ("[1,]", 3), ("tru", 0), (#""unterminated"#, 13), ("01", 1),
            (#""\x""#, 3), ("[1] x", 4), (#""\ud800""#, 7), ("-", 1), ("1.", 2),
        ])
    func rejects(_ text: String, _ offset: Int) {
        #expect(throws: JSONParser.Error.self) { try JSONParser.parse(Array(text.utf8)) }
        do {
            _ = try JSONParser.parse(Array(text.utf8))
        } catch {
            #expect(error.offset == offset, "\(error)")
        }
    }

    @Test("refuses nesting deeper than its limit instead of exhausting the stack")
    func deepNesting() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSONParser.Error.self) { try JSONParser.parse(Array(deep.utf8)) }
    }
}
