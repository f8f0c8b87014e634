import KubeModel
import WeftCompiler
import WeftController
import WeftManifests

/// Turns what the controller knows into events for people, each time something changed since the last look: a
/// manifest problem, a compile that gives proxies new config versions, each proxy's ACK (or NACK), and each
/// resource's `Accepted` and `Programmed` conditions.
struct DemoMonitor {
    private var desired: [String: String] = [:]
    private var acknowledged: [String: String] = [:]
    private var nacked: [String: String] = [:]
    private var conditions: [ResourceRef: String] = [:]
    private var problems: [String] = []

    mutating func events(
        proxies: [PushHub.ProxyStatus], statuses: [ResourceRef: ResourceStatus], problems: [ManifestProblem]
    ) -> [String] {
        var events: [String] = []
        let problemLines = problems.map(\.description)
        if problemLines != self.problems {
            self.problems = problemLines
            events += problemLines.map { "manifest problem: \($0)" }
        }

        let changed = proxies.filter { self.desired[$0.id] != $0.desired }
        if !changed.isEmpty {
            for proxy in changed { self.desired[proxy.id] = proxy.desired }
            let list = changed.map { "\($0.id) \($0.desired)" }.joined(separator: ", ")
            events.append(
                "config: new version for \(changed.count) \(changed.count == 1 ? "proxy" : "proxies"): \(list)")
        }
        for proxy in proxies {
            if let version = proxy.acknowledged, self.acknowledged[proxy.id] != version {
                self.acknowledged[proxy.id] = version
                events.append("ACK  \(proxy.id) runs \(version)")
            }
            if proxy.status == .nacked, let error = proxy.error, self.nacked[proxy.id] != error {
                self.nacked[proxy.id] = error
                events.append("NACK \(proxy.id) refused \(proxy.desired): \(error)")
            }
        }

        // A line when a condition's status or reason changes, not for each ACK that moves `3/6` to `4/6`.
        for (ref, status) in statuses.sorted(by: { $0.key < $1.key }) {
            let key = Self.key(status)
            if self.conditions[ref] != key {
                self.conditions[ref] = key
                events.append(Self.describe(ref, status))
            }
        }
        for ref in self.conditions.keys where statuses[ref] == nil {
            self.conditions[ref] = nil
            events.append("\(ref): removed")
        }
        return events
    }

    /// What makes a resource's line worth printing again: its generation, and each condition's status and reason
    /// (and message, but for Programmed's).
    static func key(_ status: ResourceStatus) -> String {
        let conditions = status.conditions.map { condition in
            // Programmed's message counts ACKs; the others' messages say what is wrong.
            let message = condition.type == "Programmed" ? "" : condition.message
            return "\(condition.type)=\(condition.status.rawValue)/\(condition.reason)/\(message)"
        }
        return "\(status.generation ?? 0) " + conditions.joined(separator: " ")
    }

    /// `demo/VirtualService/catalog (generation 2): Accepted=True Programmed=True (2/2 proxies acknowledged)`,
    /// with the reason and message of a condition that is not True.
    static func describe(_ ref: ResourceRef, _ status: ResourceStatus) -> String {
        var parts: [String] = []
        for type in ["Accepted", "ResolvedRefs", "Programmed"] {
            guard let condition = status.condition(type) else { continue }
            var text = "\(type)=\(condition.status.rawValue)"
            if condition.status != .true || type == "Programmed" {
                let detail = [condition.reason, condition.message].filter { !$0.isEmpty }
                if !detail.isEmpty { text += " (\(detail.joined(separator: ": ")))" }
            }
            parts.append(text)
        }
        let generation = status.generation.map { " (generation \($0))" } ?? ""
        return "\(ref)\(generation): \(parts.joined(separator: " "))"
    }
}
