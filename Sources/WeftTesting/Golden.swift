import Foundation

/// Golden files: compare output with a checked-in expectation, or rewrite it when `UPDATE_GOLDEN=1`.
///
/// On a mismatch the actual output is written beside the expectation as `actual.<ext>` (git-ignored), so a
/// reviewer can diff the two, as linkerd's RejectPath does.
public enum Golden {
    /// Whether this run rewrites golden files.
    public static var updating: Bool { ProcessInfo.processInfo.environment["UPDATE_GOLDEN"] == "1" }

    /// The `Fixtures` folder beside a test file.
    public static func fixtures(besides filePath: String) -> URL {
        URL(fileURLWithPath: filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    }

    /// The case folders (those holding an `input.yaml`), sorted by name.
    public static func cases(in fixtures: URL) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: fixtures.path)) ?? []
        return names.filter { name in
            FileManager.default.fileExists(
                atPath: fixtures.appendingPathComponent(name).appendingPathComponent("input.yaml").path)
        }.sorted()
    }

    /// Compares `actual` with the file at `expected`. Returns nil when they match (or after rewriting it when
    /// updating), otherwise a short description of the first difference.
    public static func check(_ actual: String, against expected: URL) -> String? {
        let actualURL = expected.deletingLastPathComponent()
            .appendingPathComponent("actual." + expected.pathExtension)
        if self.updating {
            try? actual.write(to: expected, atomically: true, encoding: .utf8)
            try? FileManager.default.removeItem(at: actualURL)
            return nil
        }
        guard let data = FileManager.default.contents(atPath: expected.path) else {
            try? actual.write(to: actualURL, atomically: true, encoding: .utf8)
            return "\(expected.path) is missing; run UPDATE_GOLDEN=1 swift test to create it"
        }
        let wanted = String(decoding: data, as: UTF8.self)
        if wanted == actual {
            try? FileManager.default.removeItem(at: actualURL)
            return nil
        }
        try? actual.write(to: actualURL, atomically: true, encoding: .utf8)
        return "\(expected.lastPathComponent) differs at \(self.firstDifference(wanted, actual)); "
            + "see \(actualURL.path) (diff it, or run UPDATE_GOLDEN=1 swift test to accept)"
    }

    static func firstDifference(_ wanted: String, _ actual: String) -> String {
        let left = wanted.split(separator: "\n", omittingEmptySubsequences: false)
        let right = actual.split(separator: "\n", omittingEmptySubsequences: false)
        for i in 0..<max(left.count, right.count) {
            let l = i < left.count ? String(left[i]) : "<end>"
            let r = i < right.count ? String(right[i]) : "<end>"
            if l != r { return "line \(i + 1):\n  expected: \(l)\n  actual:   \(r)" }
        }
        return "the end"
    }
}
