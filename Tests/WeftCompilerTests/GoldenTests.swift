import Foundation
import Testing
import WeftCompiler
import WeftManifests
import WeftTesting

/// Each folder under Fixtures/ is one case: `input.yaml` in, `expected.json` out.
/// `UPDATE_GOLDEN=1 swift test --filter GoldenTests` rewrites the expectations; review the diff.
@Suite("Compiler golden fixtures")
struct GoldenTests {
    static let fixtures = Golden.fixtures(besides: #filePath)

    @Test("compile matches expected.json", arguments: Golden.cases(in: GoldenTests.fixtures))
    func golden(_ name: String) throws {
        let folder = Self.fixtures.appendingPathComponent(name)
        let loaded = ManifestLoader().load(path: folder.appendingPathComponent("input.yaml").path)
        #expect(
            loaded.problems.filter { $0.severity == .error }.isEmpty == !name.hasPrefix("invalid-"),
            "reading problems: \(loaded.problems.map(\.description))")
        let report = CompileReport(WeftCompiler().compile(loaded.snapshot))
        let mismatch = Golden.check(try report.json(), against: folder.appendingPathComponent("expected.json"))
        #expect(mismatch == nil, "\(mismatch ?? "")")
    }

    @Test("there are at least 20 cases")
    func enoughCases() {
        #expect(Golden.cases(in: Self.fixtures).count >= 20)
    }

    @Test("compiling twice gives identical output", arguments: Golden.cases(in: GoldenTests.fixtures))
    func deterministic(_ name: String) throws {
        let path = Self.fixtures.appendingPathComponent(name).appendingPathComponent("input.yaml").path
        let first = try CompileReport(WeftCompiler().compile(ManifestLoader().load(path: path).snapshot)).json()
        var snapshot = ManifestLoader().load(path: path).snapshot
        snapshot.pods.reverse()
        snapshot.services.reverse()
        snapshot.virtualServices.reverse()
        snapshot.endpointSlices.reverse()
        let second = try CompileReport(WeftCompiler().compile(snapshot)).json()
        #expect(first == second, "input order changed the output")
    }
}
