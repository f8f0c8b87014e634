import Foundation
import KubeModel
import Testing
import WeftCompiler
import WeftManifests
import WeftTesting

/// The injector's golden cases: `Fixtures/injection/<case>/pod.yaml` (with `case.yaml`: the namespace, its
/// labels and the `weft-config` data) → `pod.yaml.injected`, `patch.json` and `outcome.txt`.
/// `UPDATE_GOLDEN=1 swift test --filter InjectionGoldenTests` rewrites them. Each patch is also applied by an
/// independent implementation (Python's `jsonpatch`, hack/apply-json-patch.py), which must give the golden pod,
/// and every injected pod injected again must change nothing.
@Suite("Injection golden files")
struct InjectionGoldenTests {
    static let fixtures = Golden.fixtures(besides: #filePath).appendingPathComponent("injection")
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static var cases: [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: Self.fixtures.path)) ?? []
        return names.filter {
            FileManager.default.fileExists(atPath: Self.fixtures.appendingPathComponent("\($0)/case.yaml").path)
        }.sorted()
    }

    struct Case {
        var namespace: String
        var namespaceLabels: [String: String]
        var settings: InjectionSettings
        var input: JSONValue
    }

    static func load(_ name: String) throws -> Case {
        let folder = Self.fixtures.appendingPathComponent(name)
        let description = try #require(
            try YAMLJSON.documents(String(contentsOf: folder.appendingPathComponent("case.yaml"), encoding: .utf8))
                .first)
        func strings(_ key: String) -> [String: String] {
            (description[key]?.objectValue ?? [:]).compactMapValues(\.stringValue)
        }
        let (settings, problems) = InjectionSettings.from(configMapData: strings("config"))
        #expect(problems.isEmpty, "\(name): \(problems)")
        let input: JSONValue
        if let source = description["from"]?.stringValue {
            let original = try Self.load(source)
            input = try Injector.inject(
                object: original.input, namespace: original.namespace, namespaceLabels: original.namespaceLabels,
                settings: original.settings
            ).object
        } else {
            let text = try String(contentsOf: folder.appendingPathComponent("pod.yaml"), encoding: .utf8)
            input = try #require(try YAMLJSON.documents(text).first)
        }
        return Case(
            namespace: description["namespace"]?.stringValue ?? "default", namespaceLabels: strings("namespaceLabels"),
            settings: settings, input: input)
    }

    static func pretty(_ value: JSONValue) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self) + "\n"
    }

    @Test("every case gives its golden pod, patch and outcome", arguments: Self.cases)
    func golden(_ name: String) async throws {
        let testCase = try Self.load(name)
        let folder = Self.fixtures.appendingPathComponent(name)
        let outcome: String
        var result: Injector.Result?
        do {
            let injected = try Injector.inject(
                object: testCase.input, namespace: testCase.namespace, namespaceLabels: testCase.namespaceLabels,
                settings: testCase.settings)
            result = injected
            outcome =
                ([injected.skipped.map { "skipped: \($0)" } ?? "injected"] + injected.warnings.map { "warning: \($0)" })
                .joined(separator: "\n") + "\n"
        } catch {
            outcome = "refused: \(error.message)\n"
        }
        if let problem = Golden.check(outcome, against: folder.appendingPathComponent("outcome.txt")) {
            Issue.record("\(name): \(problem)")
        }
        guard let result else { return }
        if let problem = Golden.check(
            YAMLJSON.emit(result.object), against: folder.appendingPathComponent("pod.yaml.injected"))
        {
            Issue.record("\(name): \(problem)")
        }
        if let problem = Golden.check(
            try Self.pretty(result.patch.json), against: folder.appendingPathComponent("patch.json"))
        {
            Issue.record("\(name): \(problem)")
        }
        // The golden YAML reads back as the injected object.
        #expect(try YAMLJSON.documents(YAMLJSON.emit(result.object)).first == result.object, "\(name)")
        if result.injected {
            #expect(!result.patch.isEmpty)
            let again = try Injector.inject(
                object: result.object, namespace: testCase.namespace, namespaceLabels: testCase.namespaceLabels,
                settings: testCase.settings)
            #expect(!again.injected && again.patch.isEmpty && again.object == result.object, "\(name): re-injected")
            let applied = try await Self.applyWithPython(result.patch, to: testCase.input)
            #expect(applied == result.object, "\(name): jsonpatch's result differs from the injected pod")
        } else {
            #expect(result.patch.isEmpty && result.object == testCase.input, "\(name)")
        }
    }

    /// Python's `jsonpatch` applies `patch` to `document`.
    static func applyWithPython(_ patch: JSONPatch, to document: JSONValue) async throws -> JSONValue? {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("weft-inject-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let documentFile = folder.appendingPathComponent("document.json")
        let patchFile = folder.appendingPathComponent("patch.json")
        try Data(try Self.pretty(document).utf8).write(to: documentFile)
        try Data(try Self.pretty(patch.json).utf8).write(to: patchFile)
        let script = Self.packageRoot.appendingPathComponent("hack/apply-json-patch.py").path
        let result = try await runProcess(["python3", script, documentFile.path, patchFile.path])
        if result.status == 3 {
            Issue.record("Python's jsonpatch is missing (python3 -m pip install jsonpatch): \(result.stderr)")
            return nil
        }
        try #require(result.status == 0, "apply-json-patch.py failed: \(result.stderr)")
        return try JSONValue.parse(result.stdout)
    }
}

struct ProcessResult: Sendable {
    var status: Int32
    var stdout: Data
    var stderr: String
}

/// Runs a command to completion off the cooperative pool, reading both pipes at once so that neither fills.
func runProcess(_ arguments: [String]) async throws -> ProcessResult {
    let result = try await ChildProcess.run(arguments)
    return ProcessResult(status: result.status, stdout: result.stdout, stderr: result.stderrText)
}
