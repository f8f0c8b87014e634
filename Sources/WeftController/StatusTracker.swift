import Foundation
import KubeModel
import WeftCompiler

/// The conditions each resource has, with Kubernetes transition-time semantics: `lastTransitionTime` is
/// set when a condition's status changes and kept otherwise.
struct StatusTracker: Sendable {
    private(set) var conditions: [ResourceRef: [meta.v1.Condition]] = [:]
    private(set) var generations: [ResourceRef: Int64?] = [:]

    /// Merges a compile's statuses; resources no longer present are dropped. Returns the resources whose
    /// conditions changed.
    @discardableResult
    mutating func update(_ statuses: [ResourceRef: ResourceStatus], now: String) -> Set<ResourceRef> {
        var changed = Set<ResourceRef>()
        var next: [ResourceRef: [meta.v1.Condition]] = [:]
        for (ref, status) in statuses {
            let merged = (self.conditions[ref] ?? []).merging(status.conditions, now: now)
            if merged != self.conditions[ref] { changed.insert(ref) }
            next[ref] = merged
            self.generations[ref] = status.generation
        }
        for ref in self.conditions.keys where next[ref] == nil {
            changed.insert(ref)
            self.generations[ref] = nil
        }
        self.conditions = next
        return changed
    }
}

/// RFC 3339 in UTC with whole seconds, as metav1.Time is written: `2026-11-24T21:50:53Z`.
func rfc3339(_ date: Date) -> String {
    date.formatted(.iso8601)
}
