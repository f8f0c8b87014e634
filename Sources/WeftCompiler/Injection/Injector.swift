import Foundation
import KubeModel

/// The sidecar injector: `inject(pod, settings) -> patch`, pure and deterministic.
///
/// The pod is decoded into `KubeModel`'s types (every field they do not model is kept), the proxy, its init
/// container, volume, env and probes are added, and the patch is the RFC 6902 difference between the pod as it
/// came and the injected one, so nothing the user wrote is dropped or rewritten except what injection changes.
/// A pod that already has the `weft-proxy` container is left as it is: injecting twice changes nothing.
public enum Injector {
    /// Annotations (and one label) the injector reads and writes.
    public enum Annotations {
        /// Pod annotation or label: `"true"`/`"enabled"` opts in, `"false"`/`"disabled"` opts out; namespace
        /// label `enabled` opts the namespace in.
        public static let inject = WeftLabels.inject
        /// Written by the injector: what it added (JSON).
        public static let status = "weft.dev/status"
        public static let proxyCPU = "weft.dev/proxy-cpu"
        public static let proxyMemory = "weft.dev/proxy-memory"
        public static let excludeOutboundPorts = "weft.dev/exclude-outbound-ports"
        public static let excludeOutboundCIDRs = "weft.dev/exclude-outbound-cidrs"
        public static let excludeInboundPorts = "weft.dev/exclude-inbound-ports"
        /// Set in classic mode so that `kubectl logs` and `exec` pick the app, not the proxy.
        public static let defaultContainer = "kubectl.kubernetes.io/default-container"
    }

    /// What injection did.
    public struct Result: Hashable, Sendable {
        /// Why the pod was not injected; nil when it was.
        public var skipped: String?
        /// The object after injection (the input itself when skipped).
        public var object: JSONValue
        /// From the input to ``object``; empty when skipped.
        public var patch: JSONPatch
        /// What the user should know (an app probe that could not be rewritten, ...).
        public var warnings: [String]

        public var injected: Bool { self.skipped == nil }
    }

    /// Where a workload kind keeps its pod template.
    static let templatePaths: [String: [String]] = [
        "Deployment": ["spec", "template"], "StatefulSet": ["spec", "template"], "DaemonSet": ["spec", "template"],
        "ReplicaSet": ["spec", "template"], "ReplicationController": ["spec", "template"], "Job": ["spec", "template"],
        "CronJob": ["spec", "jobTemplate", "spec", "template"],
    ]

    /// Injects a Pod, or the pod template of a Deployment, StatefulSet, DaemonSet, ReplicaSet,
    /// ReplicationController, Job or CronJob.
    ///
    /// - Parameters:
    ///   - object: the object as the user (or the API server's AdmissionReview) sent it.
    ///   - namespace: the namespace it is created in, when its metadata does not say (an AdmissionReview's
    ///     `request.namespace`).
    ///   - namespaceLabels: the labels of that namespace (`weft.dev/inject=enabled` opts it in).
    /// - Throws: ``InjectionError`` for an object that is not one of those kinds or does not decode, and for a
    ///   `weft.dev/` annotation with an invalid value; its message names the field.
    public static func inject(
        object: JSONValue, namespace: String? = nil, namespaceLabels: [String: String] = [:],
        settings: InjectionSettings
    ) throws(InjectionError) -> Result {
        guard case .object(let members) = object else {
            throw InjectionError("the object must be a JSON object, got \(object.kindDescription)")
        }
        let kind = members["kind"]?.stringValue ?? "Pod"
        let objectNamespace = members["metadata"]?["namespace"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
        let namespace = objectNamespace ?? namespace ?? "default"
        if kind == "Pod" {
            return try self.inject(
                pod: object, namespace: namespace, namespaceLabels: namespaceLabels, settings: settings)
        }
        guard let path = self.templatePaths[kind] else {
            throw InjectionError(
                "kind: \(kind) has no pod to inject (Pod, Deployment, StatefulSet, DaemonSet, "
                    + "ReplicaSet, ReplicationController, Job or CronJob)")
        }
        guard let template = self.value(at: path, in: object) else {
            throw InjectionError("\(path.joined(separator: ".")): missing")
        }
        let field = path.joined(separator: ".")
        var result = try self.inject(
            pod: template, namespace: namespace, namespaceLabels: namespaceLabels, settings: settings, field: field)
        guard result.injected else {
            return Result(skipped: result.skipped, object: object, patch: JSONPatch(), warnings: result.warnings)
        }
        result.object = self.setting(result.object, at: path[...], in: object)
        result.patch = JSONPatch.diff(from: object, to: result.object)
        return result
    }

    /// Injects one pod (or pod template: `metadata` and `spec`); see ``inject(object:namespace:namespaceLabels:settings:)``.
    public static func inject(
        pod json: JSONValue, namespace: String, namespaceLabels: [String: String] = [:],
        settings: InjectionSettings, field: String = ""
    ) throws(InjectionError) -> Result {
        guard case .object(var members) = json else {
            throw InjectionError("\(field.isEmpty ? "the pod" : field) must be an object, got \(json.kindDescription)")
        }
        if members["metadata"] == nil || members["metadata"] == .null { members["metadata"] = .object([:]) }
        let pod: core.v1.Pod
        do {
            pod = try JSONValueDecoder().decode(core.v1.Pod.self, from: .object(members))
        } catch {
            throw InjectionError(Self.describe(error, under: field))
        }
        let prefix = field.isEmpty ? "" : field + "."
        if let reason = try self.skipReason(
            pod, namespace: namespace, namespaceLabels: namespaceLabels,
            settings: settings, prefix: prefix)
        {
            return Result(skipped: reason, object: json, patch: JSONPatch(), warnings: [])
        }
        var sidecar = Sidecar(pod: pod, settings: settings, prefix: prefix)
        try sidecar.apply()
        var injected = members
        do {
            injected["metadata"] = try JSONValue.from(encodable: sidecar.pod.metadata)
            injected["spec"] = try JSONValue.from(encodable: sidecar.pod.spec)
        } catch {
            throw InjectionError("the injected pod does not encode: \(error)")
        }
        let object = JSONValue.object(injected)
        return Result(
            skipped: nil, object: object, patch: JSONPatch.diff(from: json, to: object), warnings: sidecar.warnings)
    }

    // MARK: - Who is injected

    /// Why `pod` gets no proxy, or nil when it gets one.
    static func skipReason(
        _ pod: core.v1.Pod, namespace: String, namespaceLabels: [String: String], settings: InjectionSettings,
        prefix: String
    ) throws(InjectionError) -> String? {
        if namespace == settings.rootNamespace || settings.neverInjectNamespaces.contains(namespace) {
            return "pods in namespace \(namespace) are never injected"
        }
        if pod.spec?.hostNetwork == true { return "the pod uses the host network" }
        let containers = (pod.spec?.containers ?? []) + (pod.spec?.initContainers ?? [])
        if containers.contains(where: { $0.name == WeftLabels.proxyContainer }) {
            return "the pod already has the \(WeftLabels.proxyContainer) container"
        }
        let choices: [(String, String?)] = [
            ("\(prefix)metadata.annotations[\(Annotations.inject)]", pod.metadata.annotations?[Annotations.inject]),
            ("\(prefix)metadata.labels[\(Annotations.inject)]", pod.metadata.labels?[Annotations.inject]),
        ]
        for (field, value) in choices {
            guard let value else { continue }
            switch value {
            case "true", "enabled": return nil
            case "false", "disabled": return "the pod opts out (\(Annotations.inject): \"\(value)\")"
            default:
                throw InjectionError("\(field): must be \"true\" or \"false\" (or enabled/disabled), got \"\(value)\"")
            }
        }
        if namespaceLabels[Annotations.inject] == "enabled" { return nil }
        return "neither the pod nor namespace \(namespace) opts in (\(Annotations.inject))"
    }

    // MARK: - JSON helpers

    static func value(at path: [String], in json: JSONValue) -> JSONValue? {
        var current = json
        for key in path {
            guard let next = current[key] else { return nil }
            current = next
        }
        return current
    }

    static func setting(_ value: JSONValue, at path: ArraySlice<String>, in json: JSONValue) -> JSONValue {
        guard let key = path.first, case .object(var members) = json else { return value }
        members[key] = self.setting(value, at: path.dropFirst(), in: members[key] ?? .object([:]))
        return .object(members)
    }

    /// A decoding error as `field.path: what`.
    public static func describe(_ error: any Error, under field: String) -> String {
        func path(_ keys: [any CodingKey]) -> String {
            var text = field
            for key in keys {
                if let index = key.intValue {
                    text += "[\(index)]"
                } else {
                    text += text.isEmpty ? key.stringValue : "." + key.stringValue
                }
            }
            return text.isEmpty ? "the pod" : text
        }
        guard let error = error as? DecodingError else { return "the pod does not decode: \(error)" }
        switch error {
        case .keyNotFound(let key, let context): return "\(path(context.codingPath + [key])): required"
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            return "\(path(context.codingPath)): \(context.debugDescription)"
        @unknown default: return "the pod does not decode: \(error)"
        }
    }
}

/// Why a pod cannot be injected: the field and what is wrong with it.
public struct InjectionError: Error, Hashable, Sendable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { self.message }
}
