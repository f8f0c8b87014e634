import Foundation
import KubeModel

/// What one controller replica knows of the proxies streaming from it: each one's acknowledged version and its
/// last refusal. Every replica publishes its report as a ConfigMap in the root namespace (`PushReporter`), and
/// the leader, which writes the `Programmed` condition, counts the proxies of the other replicas from theirs.
/// Versions are content hashes, so every replica that compiled the same cluster agrees on them.
public struct PushReport: Codable, Sendable, Hashable {
    public struct Entry: Codable, Sendable, Hashable {
        public var acknowledged: String?
        public var refused: ProgrammedLedger.Refusal?

        public init(acknowledged: String? = nil, refused: ProgrammedLedger.Refusal? = nil) {
            self.acknowledged = acknowledged
            self.refused = refused
        }
    }

    /// The replica's leader-election identity.
    public var replica: String
    /// Connected proxies by ID (`namespace/pod`).
    public var proxies: [String: Entry]

    public init(replica: String, proxies: [String: Entry] = [:]) {
        self.replica = replica
        self.proxies = proxies
    }

    /// The label every report ConfigMap carries (value `true`): what the replicas watch.
    public static let label = "weft.dev/push-report"
    static let dataKey = "proxies.json"
    static let replicaKey = "replica"
    static let renewedKey = "renewed"

    /// The ConfigMap name of a replica's report: `weft-push-report-` and the host (the pod's name in a
    /// cluster), as a DNS subdomain.
    public static func configMapName(host: String) -> String {
        var name = ""
        for character in host.lowercased() {
            if character.isASCII, character.isLetter || character.isNumber || character == "-" || character == "." {
                name.append(character)
            } else {
                name.append("-")
            }
        }
        let trimmed = name.trimmingCharacters(in: CharacterSet(charactersIn: "-."))
        return String(("weft-push-report-" + (trimmed.isEmpty ? "controller" : trimmed)).prefix(253))
    }

    /// The report as the ConfigMap `name` in `namespace` (the server-side apply body): the report as canonical
    /// JSON, and the time it was written, which changes the object on every renewal.
    public func configMap(name: String, namespace: String, renewed: Date) throws -> core.v1.ConfigMap {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var configMap = core.v1.ConfigMap()
        configMap.apiVersion = core.v1.ConfigMapFields.apiVersion
        configMap.kind = core.v1.ConfigMapFields.kind
        configMap.metadata.name = name
        configMap.metadata.namespace = namespace
        configMap.metadata.labels = [Self.label: "true", "app.kubernetes.io/managed-by": "weft-controller"]
        configMap.data = [
            Self.dataKey: String(decoding: try encoder.encode(self.proxies), as: UTF8.self),
            Self.replicaKey: self.replica,
            Self.renewedKey: rfc3339(renewed),
        ]
        return configMap
    }

    /// The report a ConfigMap holds; nil for one that is not a report (or not one this version can read).
    public init?(configMap: core.v1.ConfigMap) {
        guard configMap.metadata.labels?[Self.label] == "true", let data = configMap.data,
            let replica = data[Self.replicaKey], let json = data[Self.dataKey],
            let proxies = try? JSONDecoder().decode([String: Entry].self, from: Data(json.utf8))
        else { return nil }
        self.init(replica: replica, proxies: proxies)
    }
}
