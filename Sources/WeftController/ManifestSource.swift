import Foundation
import Logging
import Synchronization
import WeftCompiler
import WeftManifests

/// Cluster state from a folder of manifests, re-read when a file changes (the embedded default: no cluster).
///
/// The folder is polled (names, sizes and modification times), which works on every file system and inside
/// containers where inotify may be missing; reading happens only when something changed.
public final class ManifestSource: SnapshotSource {
    private struct State {
        var snapshot = WeftSnapshot()
        var problems: [ManifestProblem] = []
        var fingerprint: [String] = []
        var synced = false
    }

    public let path: String
    private let interval: Duration
    private let logger: Logger
    private let state = Mutex(State())

    public init(path: String, pollInterval: Duration = .milliseconds(250), logger: Logger) {
        self.path = path
        self.interval = pollInterval
        self.logger = logger
    }

    public func snapshot() async -> WeftSnapshot {
        self.state.withLock { $0.snapshot }
    }

    /// Problems found reading the folder (bad YAML, unknown kinds, wrong types), located.
    public var problems: [ManifestProblem] {
        self.state.withLock { $0.problems }
    }

    public var hasSynced: Bool {
        get async { self.state.withLock { $0.synced } }
    }

    public func run(changed: @escaping @Sendable () -> Void) async throws {
        while !Task.isCancelled {
            let fingerprint = Self.fingerprint(of: self.path)
            if fingerprint != self.state.withLock({ $0.fingerprint }) {
                let loaded = ManifestLoader().load(path: self.path)
                for problem in loaded.problems {
                    self.logger.warning(
                        "manifest problem",
                        metadata: [
                            "manifest.problem": "\(problem)", "manifest.severity": "\(problem.severity.rawValue)",
                        ])
                }
                self.logger.info(
                    "manifests read",
                    metadata: [
                        "manifest.path": "\(self.path)", "manifest.files": "\(loaded.files.count)",
                        "manifest.problems": "\(loaded.problems.count)",
                    ])
                self.state.withLock {
                    $0.snapshot = ManifestGenerations.assign(loaded.snapshot, previous: $0.synced ? $0.snapshot : nil)
                    $0.problems = loaded.problems
                    $0.fingerprint = fingerprint
                    $0.synced = true
                }
                changed()
            }
            try await Task.sleep(for: self.interval)
        }
    }

    /// Names, sizes and modification times of the manifest files under `path`.
    static func fingerprint(of path: String) -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return ["missing"] }
        let files = isDirectory.boolValue ? ManifestLoader.manifestFiles(in: path) : [path]
        return files.map { file in
            let attributes = try? FileManager.default.attributesOfItem(atPath: file)
            let size = (attributes?[.size] as? NSNumber)?.int64Value ?? -1
            let modified = (attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            return "\(file)|\(size)|\(modified)"
        }
    }
}
