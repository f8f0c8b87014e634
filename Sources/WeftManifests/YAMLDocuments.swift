import KubeModel
import Yams

/// Limits that keep hostile input from exhausting memory or the stack.
public enum ManifestLimits {
    /// The largest file read: far above any real folder of manifests, far below what hurts.
    public static let maxFileBytes = 16 << 20
    /// The largest document: Kubernetes itself refuses requests over 3 MiB.
    public static let maxDocumentBytes = 3 << 20
    /// The deepest nesting accepted; real manifests stay under 20.
    public static let maxDepth = 64
    /// Values a document may expand to (alias bombs expand exponentially).
    public static let maxNodes = 1_000_000
}

/// One YAML document of a file, converted to JSON, with the position of every field.
struct YAMLDocument {
    var value: JSONValue
    /// 1-based line of the document's first line.
    var line: Int
    /// Field path (`spec.http[0].route`) -> (line, column).
    var positions: [String: (Int, Int)]

    /// The line where the document's content starts: after any comments and the `---` marker.
    var startLine: Int { self.positions[""]?.0 ?? self.line }

    /// The position of `path`, or of its nearest ancestor that has one.
    func position(of path: String) -> (Int, Int)? {
        var current = path
        while true {
            if let found = self.positions[current] { return found }
            guard let cut = current.lastIndex(where: { $0 == "." || $0 == "[" }) else { break }
            current = String(current[..<cut])
        }
        return self.positions[""]
    }
}

struct YAMLError: Error {
    var message: String
    var line: Int?
    var column: Int?
}

enum YAMLDocuments {
    /// A line break as YAML counts them: LF, CRLF or CR. (`"\r\n"` is one `Character`.)
    static func isLineBreak(_ character: Character) -> Bool {
        character == "\n" || character == "\r\n" || character == "\r"
    }

    /// Splits `text` into documents at `---` lines, so that one broken document does not hide the others and
    /// each keeps its true line numbers. Returns (first line, text) pairs.
    static func split(_ text: String) -> [(Int, Substring)] {
        var documents: [(Int, Substring)] = []
        var start = text.startIndex
        var startLine = 1
        var lineNumber = 1
        var lineStart = text.startIndex
        var index = text.startIndex
        func isMarker(_ line: Substring) -> Bool {
            (line.hasPrefix("---")
                && (line.count == 3 || line.dropFirst(3).first == " " || line.dropFirst(3).first == "\r"))
                || line == "..." || line == "...\r"
        }
        while index <= text.endIndex {
            if index == text.endIndex || Self.isLineBreak(text[index]) {
                let line = text[lineStart..<index]
                if isMarker(line) {
                    documents.append((startLine, text[start..<lineStart]))
                    // Content after `--- ` on the marker line belongs to the next document.
                    start = line.hasPrefix("---") ? text.index(lineStart, offsetBy: 3) : index
                    startLine = lineNumber
                }
                if index == text.endIndex { break }
                lineNumber += 1
                lineStart = text.index(after: index)
            }
            index = text.index(after: index)
        }
        documents.append((startLine, text[start..<text.endIndex]))
        return documents.filter { !Self.isBlank($0.1) }
    }

    static func isBlank(_ text: Substring) -> Bool {
        for line in text.split(omittingEmptySubsequences: true, whereSeparator: Self.isLineBreak) {
            let trimmed = line.drop { $0 == " " || $0 == "\t" || $0 == "\r" }
            if !trimmed.isEmpty && !trimmed.hasPrefix("#") { return false }
        }
        return true
    }

    /// Parses one document. Nesting is checked before the parser sees the text, so that deeply nested junk
    /// is refused without recursion.
    static func parse(_ text: Substring, firstLine: Int) throws -> YAMLDocument? {
        if text.utf8.count > ManifestLimits.maxDocumentBytes {
            throw YAMLError(
                message:
                    "document is \(text.utf8.count / 1024) KiB; at most \(ManifestLimits.maxDocumentBytes >> 20) MiB is accepted per document, as Kubernetes does",
                line: firstLine, column: nil)
        }
        if let (depth, line) = self.flowDepth(text), depth > ManifestLimits.maxDepth {
            throw YAMLError(
                message: "nesting deeper than \(ManifestLimits.maxDepth) levels", line: firstLine + line - 1,
                column: nil)
        }
        let node: Node?
        do {
            node = try Yams.compose(yaml: String(text))
        } catch let error as YamlError {
            throw Self.translate(error, firstLine: firstLine)
        }
        guard let node else { return nil }
        var converter = Converter(firstLine: firstLine)
        let value = try converter.convert(node, path: "", depth: 0)
        return YAMLDocument(value: value, line: firstLine, positions: converter.positions)
    }

    /// The deepest nesting of flow collections and block indentation, with the line where it is reached.
    private static func flowDepth(_ text: Substring) -> (Int, Int)? {
        var deepest = 0
        var deepestLine = 1
        var line = 1
        var flow = 0
        var atLineStart = true
        var indent = 0
        var quote: Character?
        for character in text {
            if Self.isLineBreak(character) {
                line += 1
                atLineStart = true
                indent = 0
                quote = nil
                continue
            }
            if atLineStart {
                if character == " " || character == "-" {
                    indent += 1
                    continue
                }
                atLineStart = false
                // Block nesting needs at least one column per level.
                let blockDepth = indent / 2 + flow
                if blockDepth > deepest { (deepest, deepestLine) = (blockDepth, line) }
            }
            if let open = quote {
                if character == open { quote = nil }
                continue
            }
            switch character {
            case "\"", "'": quote = character
            case "[", "{":
                flow += 1
                if flow + indent / 2 > deepest { (deepest, deepestLine) = (flow + indent / 2, line) }
            case "]", "}": flow = max(0, flow - 1)
            case "#": break
            default: break
            }
        }
        return (deepest, deepestLine)
    }

    private static func translate(_ error: YamlError, firstLine: Int) -> YAMLError {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            let what = context.map { "\(problem) \($0.text)" } ?? problem
            return YAMLError(message: "invalid YAML: \(what)", line: firstLine + mark.line - 1, column: mark.column)
        case .reader(let problem, _, _, _):
            return YAMLError(message: "invalid YAML: \(problem)", line: firstLine, column: nil)
        case .duplicatedKeysInMapping(let duplicates, let context):
            return YAMLError(
                message: "duplicate keys \(duplicates.joined(separator: ", "))",
                line: firstLine + context.mark.line - 1, column: context.mark.column)
        default:
            return YAMLError(message: "invalid YAML: \(error)", line: firstLine, column: nil)
        }
    }
}

/// Turns Yams nodes into `JSONValue`, remembering positions and counting expansion.
private struct Converter {
    let firstLine: Int
    var positions: [String: (Int, Int)] = [:]
    var nodes = 0

    init(firstLine: Int) {
        self.firstLine = firstLine
    }

    mutating func convert(_ node: Node, path: String, depth: Int) throws -> JSONValue {
        self.nodes += 1
        let line = self.firstLine + (node.mark?.line ?? 1) - 1
        let column = node.mark?.column ?? 1
        if self.nodes > ManifestLimits.maxNodes {
            throw YAMLError(
                message: "document expands to more than \(ManifestLimits.maxNodes) values (an alias bomb?)",
                line: line, column: column)
        }
        if depth > ManifestLimits.maxDepth {
            throw YAMLError(
                message: "nesting deeper than \(ManifestLimits.maxDepth) levels", line: line, column: column)
        }
        if self.positions[path] == nil { self.positions[path] = (line, column) }
        switch node {
        case .scalar(let scalar):
            switch Tag.Name(rawValue: node.tag.rawValue) {
            case .null: return .null
            case .bool: return node.bool.map(JSONValue.bool) ?? .string(scalar.string)
            case .int: return node.int.map { .int(Int64($0)) } ?? .string(scalar.string)
            case .float: return node.float.map(JSONValue.double) ?? .string(scalar.string)
            default: return .string(scalar.string)
            }
        case .mapping(let mapping):
            var object: JSONObject = [:]
            for (key, value) in mapping {
                guard case .scalar(let keyScalar) = key else {
                    throw YAMLError(message: "mapping keys must be strings", line: line, column: column)
                }
                let name = keyScalar.string
                let keyLine = self.firstLine + (key.mark?.line ?? 1) - 1
                if object[name] != nil {
                    throw YAMLError(message: "duplicate key \"\(name)\"", line: keyLine, column: key.mark?.column)
                }
                let child = path.isEmpty ? name : "\(path).\(name)"
                // A field is where its key is written: a block value starts on the next line.
                if self.positions[child] == nil { self.positions[child] = (keyLine, key.mark?.column ?? 1) }
                object[name] = try self.convert(value, path: child, depth: depth + 1)
            }
            return .object(object)
        case .sequence(let sequence):
            var array: [JSONValue] = []
            for (i, element) in sequence.enumerated() {
                array.append(try self.convert(element, path: "\(path)[\(i)]", depth: depth + 1))
            }
            return .array(array)
        case .alias:
            throw YAMLError(message: "unresolved alias", line: line, column: column)
        }
    }
}
