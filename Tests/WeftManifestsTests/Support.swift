import Foundation
import Testing
import WeftManifests

/// Loads `text` as the file `file`.
func load(_ text: String, file: String = "test.yaml") -> LoadedManifests {
    ManifestLoader().load(text: text, file: file)
}

/// The problems as `file:line:column: resource: field: message` lines.
func lines(_ loaded: LoadedManifests) -> [String] {
    loaded.problems.map(\.description)
}

/// A fresh temporary folder, removed by `body`'s end.
func withTemporaryFolder<T>(_ body: (URL) throws -> T) throws -> T {
    let folder = FileManager.default.temporaryDirectory
        .appendingPathComponent("weft-manifests-tests-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    return try body(folder)
}

/// The package root, found from this file's path.
let packageRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent()  // WeftManifestsTests
    .deletingLastPathComponent()  // Tests
    .deletingLastPathComponent()

let examplesFolder = packageRoot.appendingPathComponent("manifests/examples").path
