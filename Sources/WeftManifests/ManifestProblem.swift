/// A problem found while reading manifests, located as precisely as the input allows.
public struct ManifestProblem: Hashable, Sendable, Codable, CustomStringConvertible {
    public enum Severity: String, Codable, Sendable, Hashable {
        case error
        case warning
    }

    public var severity: Severity
    public var file: String
    /// 1-based.
    public var line: Int?
    /// 1-based.
    public var column: Int?
    /// `namespace/Kind/name` when the problem belongs to one resource.
    public var resource: String?
    /// The field path, e.g. `spec.http[0].timeout`.
    public var field: String?
    public var message: String

    public init(
        _ severity: Severity, file: String, line: Int? = nil, column: Int? = nil, resource: String? = nil,
        field: String? = nil, message: String
    ) {
        self.severity = severity
        self.file = file
        self.line = line
        self.column = column
        self.resource = resource
        self.field = field
        self.message = message
    }

    /// `file:line:column: namespace/Kind/name: field.path: reason`.
    public var description: String {
        var text = self.file
        if let line = self.line {
            text += ":\(line)"
            if let column = self.column { text += ":\(column)" }
        }
        text += ": "
        if let resource = self.resource { text += "\(resource): " }
        if let field = self.field, !field.isEmpty { text += "\(field): " }
        return text + self.message
    }
}

/// Where a resource was read from.
public struct SourceLocation: Hashable, Sendable, Codable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int?

    public init(file: String, line: Int, column: Int? = nil) {
        self.file = file
        self.line = line
        self.column = column
    }

    /// `file:line` or `file:line:column`.
    public var description: String { "\(self.file):\(self.line)" + (self.column.map { ":\($0)" } ?? "") }
}
