import Foundation

extension JSONValue {
    /// The JSON form of any `Encodable`, through `JSONEncoder`.
    public static func from<T: Encodable>(encodable value: T) throws -> JSONValue {
        let data = try JSONEncoder().encode(value)
        return try JSONParser.parse(data)
    }

    /// Decodes JSON bytes (with `JSONParser`: fast, depth-limited).
    public static func parse(_ data: Data) throws -> JSONValue {
        try JSONParser.parse(data)
    }
}
