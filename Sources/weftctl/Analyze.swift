import ArgumentParser
import Foundation
import KubeModel
import WeftCompiler
import WeftManifests

/// `weftctl analyze -f PATH`: finds mistakes in manifests, offline.
struct Analyze: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Find mistakes in Weft resources and the cluster objects they reference, offline.",
        discussion: """
            Reads a file or a folder of manifests (YAML or JSON), validates every Weft resource, compiles the \
            mesh as the controller would, and prints each problem as `namespace/kind/name: field.path: reason`, \
            then the conditions each resource would get. Exits 1 when anything is invalid.
            """
    )

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case table
        case json
    }

    @Option(name: .shortAndLong, help: "A manifest file or a folder of them.")
    var filename: String

    @Option(name: .shortAndLong, help: "Output format: table or json.")
    var output: Format = .table

    func run() throws {
        let report = AnalysisReport(path: self.filename)
        switch self.output {
        case .json: print(try report.json())
        case .table: print(report.text(), terminator: "")
        }
        if report.hasErrors { throw ExitCode(1) }
    }
}

/// The result of analysing a path: problems (reading and compiling) and conditions per resource.
struct AnalysisReport {
    struct Problem: Codable {
        var severity: String
        var resource: String?
        var field: String?
        var message: String
        var location: String?
    }

    struct Resource: Codable {
        var resource: String
        var location: String?
        var conditions: [meta.v1.Condition]
    }

    var problems: [Problem] = []
    var resources: [Resource] = []

    init(path: String) {
        let loaded = ManifestLoader().load(path: path)
        for problem in loaded.problems {
            let location =
                problem.line.map { line in
                    "\(problem.file):\(line)" + (problem.column.map { ":\($0)" } ?? "")
                } ?? problem.file
            self.problems.append(
                Problem(
                    severity: problem.severity.rawValue, resource: problem.resource,
                    field: problem.field, message: problem.message, location: location))
        }
        // Generation 1 for every resource, as the controller's manifests mode reads a folder first.
        let result = WeftCompiler().compile(ManifestGenerations.assign(loaded.snapshot, previous: nil))
        let readProblems = Set(self.problems.map { "\($0.resource ?? "")|\($0.field ?? "")|\($0.message)" })
        for diagnostic in result.diagnostics {
            let resource = diagnostic.resource.description
            // Validation errors found while reading are not repeated.
            guard !readProblems.contains("\(resource)|\(diagnostic.field)|\(diagnostic.message)") else { continue }
            self.problems.append(
                Problem(
                    severity: diagnostic.severity.rawValue, resource: resource,
                    field: diagnostic.field.isEmpty ? nil : diagnostic.field,
                    message: diagnostic.message,
                    location: loaded.location(of: resource, field: diagnostic.field)?.description))
        }
        for (ref, status) in result.statuses.sorted(by: { $0.key < $1.key }) {
            self.resources.append(
                Resource(
                    resource: ref.description,
                    location: loaded.locations[ref.description]?.description,
                    conditions: status.conditions))
        }
    }

    var hasErrors: Bool { self.problems.contains { $0.severity == "error" } }

    func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(
            decoding: try encoder.encode([
                "problems": AnyEncodable(self.problems),
                "resources": AnyEncodable(self.resources),
            ]), as: UTF8.self)
    }

    func text() -> String {
        var out = ""
        if self.problems.isEmpty {
            out += "No problems found.\n"
        } else {
            for problem in self.problems {
                var line = problem.severity == "warning" ? "warning: " : ""
                if let resource = problem.resource {
                    line += "\(resource): "
                    if let field = problem.field { line += "\(field): " }
                    line += problem.message
                    if let location = problem.location { line += " (\(location))" }
                } else {
                    line += "\(problem.location ?? ""): \(problem.message)"
                }
                out += line + "\n"
            }
        }
        guard !self.resources.isEmpty else { return out }
        out += "\n"
        var rows = [["RESOURCE", "ACCEPTED", "RESOLVEDREFS", "REASON"]]
        for resource in self.resources {
            let accepted = resource.conditions.first { $0.type == ConditionType.accepted }
            let refs = resource.conditions.first { $0.type == ConditionType.resolvedRefs }
            let failing = resource.conditions.first { $0.status != .true }
            rows.append([
                resource.resource, accepted?.status.rawValue ?? "-", refs?.status.rawValue ?? "-",
                failing?.reason ?? "-",
            ])
        }
        let widths = (0..<4).map { column in rows.map { $0[column].count }.max() ?? 0 }
        for row in rows {
            out +=
                row.enumerated().map { column, cell in
                    column == 3 ? cell : cell.padding(toLength: widths[column] + 2, withPad: " ", startingAt: 0)
                }.joined() + "\n"
        }
        return out
    }
}

/// Lets values of different types sit in one dictionary for encoding.
struct AnyEncodable: Encodable {
    let encodeValue: (any Encoder) throws -> Void

    init<T: Encodable>(_ value: T) {
        self.encodeValue = value.encode(to:)
    }

    func encode(to encoder: any Encoder) throws {
        try self.encodeValue(encoder)
    }
}
