import Foundation
import KubeModel
import ProxyConfig
import WeftCompiler

/// The golden form of a compile: every proxy's config, every resource's status, and the diagnostics, as
/// sorted, pretty JSON.
public struct CompileReport: Encodable {
    public struct Status: Encodable {
        var generation: Int64?
        var conditions: [meta.v1.Condition]
        var affectedProxies: [String]
    }

    public var proxies: [String: ProxyConfig]
    public var resources: [String: Status]
    public var diagnostics: [String]

    public init(_ result: CompileResult) {
        self.proxies = result.proxies
        self.resources = Dictionary(
            uniqueKeysWithValues: result.statuses.map { ref, status in
                (
                    ref.description,
                    Status(
                        generation: status.generation, conditions: status.conditions,
                        affectedProxies: status.affectedProxies)
                )
            })
        self.diagnostics = result.diagnostics.map { "\($0.severity.rawValue): \($0)" }
    }

    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self) + "\n"
    }
}
