import WeftCompiler

/// Where the reconciler gets cluster state: informers on a cluster, or a folder of manifests.
public protocol SnapshotSource: Sendable {
    /// The current state. Called after every debounced change.
    func snapshot() async -> WeftSnapshot
    /// Watches for changes until cancelled, calling `changed` (cheaply: it only marks) after each.
    /// Returns or throws only when the source cannot go on.
    func run(changed: @escaping @Sendable () -> Void) async throws
    /// Whether the first complete read is done (readiness).
    var hasSynced: Bool { get async }
}
