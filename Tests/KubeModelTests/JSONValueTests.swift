import Foundation
import KubeModel
import Testing

@Suite("JSONValue")
struct JSONValueTests {
    @Test(
        "parsing keeps integers apart from doubles",
        arguments: [
            ("1", JSONValue.int(1)),
            ("-1", .int(-1)),
            ("0", .int(0)),
            ("1.5", .double(1.5)),
            ("-0.25", .double(-0.25)),
            ("9223372036854775807", .int(Int64.max)),
            ("-9223372036854775808", .int(Int64.min)),
            ("9007199254740993", .int(9_007_199_254_740_993)),
            ("1e300", .double(1e300)),
            ("true", .bool(true)),
            ("false", .bool(false)),
            ("null", .null),
            (#""1""#, .string("1")),
            (#""true""#, .string("true")),
            ("[]", .array([])),
            ("{}", .object([:])),
        ])
    func parse(_ text: String, _ expected: JSONValue) throws {
        #expect(try JSONValue.parse(Data("[\(text)]".utf8)) == .array([expected]))
    }

    @Test("a round trip through JSON text keeps every value and its kind")
    func roundTrip() throws {
        let value: JSONValue = [
            "int": 1, "double": 1.5, "big": .int(9_007_199_254_740_993), "max": .int(Int64.max),
            "min": .int(Int64.min), "negative": -3, "string": "x", "bool": false, "null": nil,
            "array": [1, 2.25, "3", [nil], [:]], "nested": ["a": ["b": ["c": 1]]],
            "unicode": "héllo ✓ \u{1F600}", "escapes": "quote \" backslash \\ newline \n tab \t",
        ]
        let text = try JSONEncoder().encode(value)
        let back = try JSONValue.parse(text)
        #expect(back == value)
        #expect(back["big"] == .int(9_007_199_254_740_993))
        #expect(back["double"] == .double(1.5))
        #expect(back["int"] == .int(1))
        // The int64 is written as digits, never through a double.
        #expect(String(decoding: text, as: UTF8.self).contains("9007199254740993"))
        #expect(String(decoding: text, as: UTF8.self).contains("9223372036854775807"))
    }

    @Test("JSONValueDecoder reads a JSONValue as itself")
    func identity() throws {
        let value: JSONValue = ["a": [1, 1.5, nil, "s", true]]
        #expect(try JSONValueDecoder().decode(JSONValue.self, from: value) == value)
        #expect(try JSONValue.from(encodable: value) == value)
    }

    @Test("accessors")
    func accessors() {
        let value: JSONValue = ["a": ["b": "c"], "list": [1]]
        #expect(value["a"]?["b"]?.stringValue == "c")
        #expect(value["list"]?.arrayValue == [1])
        #expect(value["missing"] == nil)
        #expect(value["list"]?["x"] == nil)
        #expect(JSONValue.int(1).objectValue == nil)
        #expect(JSONValue.int(1).kindDescription == "a number")
        #expect(JSONValue.double(1).kindDescription == "a number")
        #expect(JSONValue.null.kindDescription == "null")
        #expect(JSONValue.array([]).kindDescription == "an array")
        #expect(JSONValue.object([:]).kindDescription == "an object")
    }

    @Test("JSONValueDecoder converts numbers as wide as the target allows")
    func numbers() throws {
        let decoder = JSONValueDecoder()
        #expect(try decoder.decode(Double.self, from: 3) == 3.0)
        #expect(try decoder.decode(Int64.self, from: .int(Int64.max)) == Int64.max)
        #expect(try decoder.decode(UInt16.self, from: 65535) == 65535)
        #expect(throws: DecodingError.self) { try decoder.decode(UInt16.self, from: 65536) }
        #expect(throws: DecodingError.self) { try decoder.decode(UInt32.self, from: -1) }
        #expect(throws: DecodingError.self) { try decoder.decode(Int.self, from: 1e300) }
        #expect(throws: DecodingError.self) { try decoder.decode(String.self, from: 1) }
        #expect(try decoder.decode([String: Int32].self, from: ["a": 1]) == ["a": 1])
        #expect(try decoder.decode([Int32?].self, from: [1, nil]) == [1, nil])
    }
}
