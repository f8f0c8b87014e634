import KubeModel
import WeftAPI

/// Decodes one document into a typed object, turning every failure into a located problem.
struct DecodeContext {
    let document: YAMLDocument
    let file: String
    let defaultNamespace: String

    /// Decodes `type`; with `strict`, fields the type does not know are errors (as `kubectl --validate=strict`).
    func decode<R: KubeResource>(
        _ type: R.Type, strict: Bool = false, into result: inout LoadedManifests,
        add: (inout LoadedManifests, R) -> Void
    ) {
        let name = self.document.value["metadata"]?["name"]?.stringValue
        var namespace = self.document.value["metadata"]?["namespace"]?.stringValue
        if namespace == nil && R.isNamespaced { namespace = self.defaultNamespace }
        let label = "\(namespace ?? "")/\(R.kind)/\(name ?? "<unnamed>")"
        do {
            var object = try JSONValueDecoder().decode(R.self, from: self.document.value)
            if object.metadata.namespace == nil && R.isNamespaced { object.metadata.namespace = self.defaultNamespace }
            guard let objectName = object.metadata.name, !objectName.isEmpty else {
                self.problem(.error, label, field: "metadata.name", "must be set", into: &result)
                return
            }
            if strict {
                for path in Self.unknownFields(input: self.document.value, known: try Self.reencode(object)) {
                    let leaf = path.split(separator: ".").last.map(String.init) ?? path
                    self.problem(.error, label, field: path, "unknown field \"\(leaf)\"", into: &result)
                }
            }
            if let previous = result.locations[label] {
                self.problem(.error, label, field: nil, "defined again; first defined at \(previous)", into: &result)
                return
            }
            result.locations[label] = SourceLocation(file: self.file, line: self.document.startLine)
            if strict {
                result.fieldLocations[label] = self.document.positions.mapValues { position in
                    SourceLocation(file: self.file, line: position.0, column: position.1)
                }
            }
            add(&result, object)
        } catch let error as DecodingError {
            let (path, message) = Self.describe(error)
            self.problem(.error, label, field: path, message, into: &result)
        } catch {
            self.problem(.error, label, field: nil, "\(error)", into: &result)
        }
    }

    private func problem(
        _ severity: ManifestProblem.Severity, _ resource: String, field: String?, _ message: String,
        into result: inout LoadedManifests
    ) {
        let position = self.document.position(of: field ?? "") ?? (self.document.line, 1)
        result.problems.append(
            ManifestProblem(
                severity, file: self.file, line: position.0, column: position.1,
                resource: resource, field: field, message: message))
    }

    static func describe(_ error: DecodingError) -> (String, String) {
        switch error {
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            return (context.codingPath.fieldPath, context.debugDescription)
        case .keyNotFound(let key, let context):
            return ((context.codingPath + [key]).fieldPath, "required field is missing")
        @unknown default:
            return ("", "\(error)")
        }
    }

    static func reencode<T: Encodable>(_ value: T) throws -> JSONValue {
        try JSONValue.from(encodable: value)
    }

    /// Paths of object members present (and not null) in `input` but absent from `known`.
    static func unknownFields(input: JSONValue, known: JSONValue, path: String = "") -> [String] {
        switch (input, known) {
        case (.object(let members), .object(let knownMembers)):
            var result: [String] = []
            for key in members.keys.sorted() {
                guard let value = members[key], value != .null else { continue }
                let child = path.isEmpty ? key : "\(path).\(key)"
                if let knownValue = knownMembers[key] {
                    result += self.unknownFields(input: value, known: knownValue, path: child)
                } else if path != "metadata" && path != "status" && !path.hasPrefix("metadata.") {
                    result.append(child)
                }
            }
            return result
        case (.array(let elements), .array(let knownElements)):
            var result: [String] = []
            for (i, element) in elements.enumerated() where i < knownElements.count {
                result += self.unknownFields(input: element, known: knownElements[i], path: "\(path)[\(i)]")
            }
            return result
        default:
            return []
        }
    }
}
