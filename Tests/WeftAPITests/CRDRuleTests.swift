import Dispatch
import Foundation
import Synchronization
import Testing
import WeftAPI

/// The CRDs' `x-kubernetes-validations` rules and string patterns, evaluated offline by hack/crd-rules.py with
/// cel-python, judge the examples of Fixtures/crd-rule-examples.yaml (and manifests/examples) as WeftAPI's
/// validation does: a valid example passes both, an invalid one is refused by both, each with the expected
/// refusals. Every rule must be seen passing and refusing, so a new rule needs examples.
@Suite("CRD rules agree with WeftAPI validation")
struct CRDRuleTests {
    static let script = CRDSchemaTests.packageRoot.appendingPathComponent("hack/crd-rules.py")
    static let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/crd-rule-examples.yaml")
    static let installHint = "python3 -m pip install cel-python PyYAML"

    struct Report: Decodable {
        var rules: [Rule]
        var examples: [Example]
    }

    struct Rule: Decodable {
        var id: String
        var rule: String
        var message: String
    }

    struct Example: Decodable {
        var name: String
        var kind: String?
        /// The refusals expected from the CRD, and the field paths expected from WeftAPI.
        var crd: [String]
        var swift: [String]
        /// What the CRD did: `<path>: <message>` per refusal, and rules that failed to evaluate.
        var refusals: [String]
        var errors: [String]
        /// Rule id to `true`, `false` or `error`, once per place the rule applied.
        var evaluations: [String: [String]]
    }

    @Test("every rule and pattern judges the examples as WeftAPI does, and every rule is exercised")
    func rulesAgreeWithValidation() async throws {
        let manifests = try FileManager.default
            .contentsOfDirectory(atPath: CRDSchemaTests.packageRoot.appendingPathComponent("manifests/examples").path)
            .filter { $0.hasSuffix(".yaml") }.sorted()
            .map { CRDSchemaTests.packageRoot.appendingPathComponent("manifests/examples/\($0)").path }
        let result = try await runPython(
            [Self.script.path, CRDSchemaTests.crdsDirectory.path, Self.examples.path] + manifests)
        if result.status == 3 {
            Issue.record(
                "cel-python is missing, so the CRD rules cannot be checked: \(Self.installHint)\n\(result.stderr)")
            return
        }
        try #require(result.status == 0, "hack/crd-rules.py failed (\(result.status)):\n\(result.stderr)")
        let report = try JSONDecoder().decode(Report.self, from: result.stdout)
        let objects = try Self.objects(result.stdout)
        try #require(objects.count == report.examples.count)

        let ruleCount = try CRDSchemaTests.kinds.reduce(0) { $0 + (try CRDSchemaTests.crdSchema($1).ruleCount) }
        #expect(report.rules.count == ruleCount, "the script found other rules than CRDSchemaTests")
        #expect(report.examples.count > 20, "too few examples: is \(Self.examples.lastPathComponent) read?")

        for (example, object) in zip(report.examples, objects) {
            #expect(
                example.errors.isEmpty,
                "\(example.name): rules failed to evaluate:\n\(example.errors.joined(separator: "\n"))")
            #expect(example.refusals == example.crd.sorted(), "\(example.name): the CRD's refusals")
            let swiftPaths = try Self.validate(kind: example.kind, object: object).map(\.path)
            #expect(swiftPaths.sorted() == example.swift.sorted(), "\(example.name): WeftAPI's errors")
            #expect(
                swiftPaths.isEmpty == (example.refusals.isEmpty && example.errors.isEmpty),
                "\(example.name): the CRD and WeftAPI disagree on whether it is valid")
        }

        var seen: [String: Set<String>] = [:]
        for example in report.examples {
            for (rule, results) in example.evaluations {
                seen[rule, default: []].formUnion(results)
            }
        }
        for rule in report.rules {
            let results = seen[rule.id] ?? []
            #expect(results.contains("true"), "\(rule.id) (\(rule.rule)) never passes an example: add a valid one")
            #expect(results.contains("false"), "\(rule.id) (\(rule.rule)) never refuses an example: add an invalid one")
        }
    }

    @Test("without cel-python the script says how to install it")
    func missingCelPythonIsReported() async throws {
        // `-S`: no site-packages, so neither celpy nor yaml imports.
        let result = try await runPython([
            "-S", Self.script.path, CRDSchemaTests.crdsDirectory.path, Self.examples.path,
        ])
        #expect(result.status == 3)
        #expect(result.stderr.contains(Self.installHint), "\(result.stderr)")
    }

    // MARK: - Helpers

    /// Each example's `object`, as JSON, in the report's order.
    static func objects(_ report: Data) throws -> [Data] {
        let root = try #require(try JSONSerialization.jsonObject(with: report) as? [String: Any])
        let examples = try #require(root["examples"] as? [[String: Any]])
        return try examples.map { example in
            try JSONSerialization.data(withJSONObject: try #require(example["object"]))
        }
    }

    static func validate(kind: String?, object: Data) throws -> [FieldError] {
        let decoder = JSONDecoder()
        switch kind {
        case VirtualService.kind: return try decoder.decode(VirtualService.self, from: object).validate()
        case DestinationPolicy.kind: return try decoder.decode(DestinationPolicy.self, from: object).validate()
        case MeshTLSPolicy.kind: return try decoder.decode(MeshTLSPolicy.self, from: object).validate()
        case AuthorizationPolicy.kind: return try decoder.decode(AuthorizationPolicy.self, from: object).validate()
        default:
            Issue.record("an example of unknown kind \(kind ?? "(none)")")
            return []
        }
    }
}

struct PythonResult: Sendable {
    var status: Int32
    var stdout: Data
    var stderr: String
}

/// Runs `python3 arguments` to completion (killed after `timeout`), draining stdout and stderr at once so that
/// neither pipe fills. The child inherits the test process's blocked signal mask (see
/// Tests/WeftProxyTests/TestProcesses.swift); that is harmless here: it is never signalled except by SIGKILL.
func runPython(_ arguments: [String], timeout: Duration = .seconds(120)) async throws -> PythonResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3"] + arguments
    let stdout = Pipe()
    let stderr = Pipe()
    process.standardOutput = stdout
    process.standardError = stderr
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let deadline = DispatchTime.now() + .seconds(Int(timeout.components.seconds))
    DispatchQueue.global().asyncAfter(deadline: deadline) { [process] in
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
    let errors = ErrorOutput()
    return await withCheckedContinuation { continuation in
        // Blocking reads and waits on threads of their own (not Dispatch's global queue, whose few threads they
        // would hold).
        let group = DispatchGroup()
        group.enter()
        Thread.detachNewThread {
            errors.data.withLock { $0 = stderr.fileHandleForReading.readDataToEndOfFile() }
            group.leave()
        }
        Thread.detachNewThread {
            let out = stdout.fileHandleForReading.readDataToEndOfFile()
            group.wait()
            process.waitUntilExit()
            let err = errors.data.withLock { $0 }
            continuation.resume(
                returning: PythonResult(
                    status: process.terminationStatus, stdout: out, stderr: String(decoding: err, as: UTF8.self)))
        }
    }
}

private final class ErrorOutput: Sendable {
    let data = Mutex(Data())
}
