import KubeModel
import Yams

/// YAML text to JSON values and back, for tools that rewrite manifests (`weftctl inject`, the injector's
/// golden files): the same parser and limits as ``ManifestLoader``.
public enum YAMLJSON {
    /// Why a document could not be read: its message, and where.
    public struct Error: Swift.Error, Hashable, Sendable, CustomStringConvertible {
        public var message: String
        public var line: Int?

        public var description: String { self.line.map { "line \($0): \(self.message)" } ?? self.message }
    }

    /// Every non-empty document of a (multi-document) YAML or JSON text.
    public static func documents(_ text: String) throws(Error) -> [JSONValue] {
        var values: [JSONValue] = []
        for (line, document) in YAMLDocuments.split(text) where !YAMLDocuments.isBlank(document) {
            do {
                if let parsed = try YAMLDocuments.parse(document, firstLine: line) { values.append(parsed.value) }
            } catch let error as YAMLError {
                throw Error(message: error.message, line: error.line)
            } catch {
                throw Error(message: "\(error)", line: line)
            }
        }
        return values
    }

    /// Block-style YAML for `value`, keys sorted; strings that would read as another type are quoted.
    public static func emit(_ value: JSONValue) -> String {
        (try? Yams.serialize(node: self.node(value), sortKeys: true)) ?? ""
    }

    static func node(_ value: JSONValue) -> Node {
        switch value {
        case .null: Node("null", Tag(.null))
        case .bool(let flag): Node(flag ? "true" : "false", Tag(.bool))
        case .int(let number): Node(String(number), Tag(.int))
        case .double(let number): Node(String(number), Tag(.float))
        case .string(let text): self.string(text)
        case .array(let elements): Node(elements.map { self.node($0) })
        case .object(let members):
            Node(members.keys.sorted().map { (self.string($0), self.node(members[$0] ?? .null)) })
        }
    }

    /// A string scalar; one that would read back as a bool, number or null when plain is double-quoted.
    static func string(_ text: String) -> Node {
        let plain = Resolver.default.resolveTag(of: Node(text)) == .str && !text.isEmpty
        return Node(text, Tag(.str), plain ? .any : .doubleQuoted)
    }
}
