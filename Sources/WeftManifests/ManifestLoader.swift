import Foundation
import KubeModel
import WeftAPI
import WeftCompiler

/// What a folder (or file) of manifests holds: a snapshot for the compiler, every problem found reading it,
/// and where each resource came from.
public struct LoadedManifests: Sendable {
    public var snapshot = WeftSnapshot()
    public var problems: [ManifestProblem] = []
    /// `namespace/Kind/name` -> where it was read.
    public var locations: [String: SourceLocation] = [:]
    /// Files read, sorted.
    public var files: [String] = []
    /// For Weft resources: field path -> where it was written.
    public var fieldLocations: [String: [String: SourceLocation]] = [:]

    public init() {}

    /// Where a field of a resource was written: the field itself, else its nearest written ancestor, else the
    /// resource.
    public func location(of resource: String, field: String?) -> SourceLocation? {
        if var path = field, let fields = self.fieldLocations[resource] {
            while true {
                if let found = fields[path] { return found }
                guard let cut = path.lastIndex(where: { $0 == "." || $0 == "[" }) else { break }
                path = String(path[..<cut])
            }
        }
        return self.locations[resource]
    }

    public var hasErrors: Bool { self.problems.contains { $0.severity == .error } }
}

/// Reads Kubernetes manifests (YAML or JSON, many documents per file) into a `WeftSnapshot`.
///
/// Never crashes on bad input: every problem becomes a `ManifestProblem` with file, line and column, and the
/// documents that are fine are still loaded.
public struct ManifestLoader: Sendable {
    /// Namespace given to namespaced objects that name none, as `kubectl apply` would.
    public var defaultNamespace: String

    public init(defaultNamespace: String = "default") {
        self.defaultNamespace = defaultNamespace
    }

    /// Reads a file, or every `.yaml`, `.yml` and `.json` file below a folder (sorted, hidden files skipped).
    public func load(path: String) -> LoadedManifests {
        var result = LoadedManifests()
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            result.problems.append(ManifestProblem(.error, file: path, message: "no such file or folder"))
            return result
        }
        let files = isDirectory.boolValue ? Self.manifestFiles(in: path) : [path]
        if files.isEmpty {
            result.problems.append(ManifestProblem(.warning, file: path, message: "no .yaml, .yml or .json files"))
        }
        for file in files {
            self.read(file: file, into: &result)
        }
        return result
    }

    /// Reads manifests from text, as if from `file`.
    public func load(text: String, file: String = "<input>") -> LoadedManifests {
        var result = LoadedManifests()
        self.read(text: text, file: file, into: &result)
        return result
    }

    public static func manifestFiles(in folder: String) -> [String] {
        guard let enumerator = FileManager.default.enumerator(atPath: folder) else { return [] }
        var files: [String] = []
        while let relative = enumerator.nextObject() as? String {
            let parts = relative.split(separator: "/")
            if parts.contains(where: { $0.hasPrefix(".") }) { continue }
            if relative.hasSuffix(".yaml") || relative.hasSuffix(".yml") || relative.hasSuffix(".json") {
                files.append((folder as NSString).appendingPathComponent(relative))
            }
        }
        return files.sorted()
    }

    private func read(file: String, into result: inout LoadedManifests) {
        let attributes = try? FileManager.default.attributesOfItem(atPath: file)
        let size = (attributes?[.size] as? NSNumber)?.intValue ?? 0
        if size > ManifestLimits.maxFileBytes {
            result.problems.append(
                ManifestProblem(
                    .error, file: file,
                    message:
                        "file is \(size >> 20) MiB; files over \(ManifestLimits.maxFileBytes >> 20) MiB are not read"))
            return
        }
        guard let data = FileManager.default.contents(atPath: file) else {
            result.problems.append(ManifestProblem(.error, file: file, message: "cannot read the file"))
            return
        }
        guard let text = String(data: data, encoding: .utf8) else {
            result.problems.append(ManifestProblem(.error, file: file, message: "the file is not UTF-8 text"))
            return
        }
        self.read(text: text, file: file, into: &result)
    }

    private func read(text: String, file: String, into result: inout LoadedManifests) {
        result.files.append(file)
        result.files.sort()
        if text.utf8.count > ManifestLimits.maxFileBytes {
            result.problems.append(
                ManifestProblem(
                    .error, file: file,
                    message:
                        "input is \(text.utf8.count >> 20) MiB; more than \(ManifestLimits.maxFileBytes >> 20) MiB is not read"
                ))
            return
        }
        for (line, body) in YAMLDocuments.split(text) {
            do {
                guard let document = try YAMLDocuments.parse(body, firstLine: line) else { continue }
                self.add(document, file: file, into: &result)
            } catch let error as YAMLError {
                result.problems.append(
                    ManifestProblem(
                        .error, file: file, line: error.line, column: error.column,
                        message: error.message))
            } catch {
                result.problems.append(ManifestProblem(.error, file: file, line: line, message: "\(error)"))
            }
        }
    }

    private func add(_ document: YAMLDocument, file: String, into result: inout LoadedManifests) {
        guard case .object(let object) = document.value else {
            result.problems.append(
                ManifestProblem(
                    .error, file: file, line: document.startLine,
                    message: "a manifest must be an object, found \(document.value.kindDescription)"))
            return
        }
        let apiVersion = object["apiVersion"]?.stringValue
        let kind = object["kind"]?.stringValue
        guard let apiVersion, let kind else {
            result.problems.append(
                ManifestProblem(
                    .error, file: file, line: document.startLine,
                    message: "apiVersion and kind must be set"))
            return
        }
        if kind.hasSuffix("List"), let items = object["items"]?.arrayValue {
            for (i, item) in items.enumerated() {
                var child = YAMLDocument(
                    value: item, line: document.position(of: "items[\(i)]")?.0 ?? document.line,
                    positions: [:])
                child.positions = document.positions.reduce(into: [:]) { positions, entry in
                    let prefix = "items[\(i)]"
                    guard entry.key.hasPrefix(prefix) else { return }
                    var rest = String(entry.key.dropFirst(prefix.count))
                    if rest.hasPrefix(".") { rest.removeFirst() }
                    positions[rest] = entry.value
                }
                self.add(child, file: file, into: &result)
            }
            return
        }
        let context = DecodeContext(document: document, file: file, defaultNamespace: self.defaultNamespace)
        switch (apiVersion, kind) {
        case ("v1", "Namespace"):
            context.decode(core.v1.Namespace.self, into: &result) { $0.snapshot.namespaces.append($1) }
        case ("v1", "Pod"): context.decode(core.v1.Pod.self, into: &result) { $0.snapshot.pods.append($1) }
        case ("v1", "Service"): context.decode(core.v1.Service.self, into: &result) { $0.snapshot.services.append($1) }
        case ("discovery.k8s.io/v1", "EndpointSlice"):
            context.decode(discovery.v1.EndpointSlice.self, into: &result) { $0.snapshot.endpointSlices.append($1) }
        case ("apps/v1", "Deployment"):
            context.decode(apps.v1.Deployment.self, into: &result) { $0.snapshot.deployments.append($1) }
        case ("v1", "ConfigMap"):
            context.decode(core.v1.ConfigMap.self, into: &result) { result, configMap in
                guard configMap.metadata.name == "weft-config" else { return }
                let (settings, problems) = MeshSettings.from(configMapData: configMap.data ?? [:])
                result.snapshot.settings = settings
                for problem in problems {
                    result.problems.append(
                        ManifestProblem(
                            .error, file: file, line: document.startLine,
                            resource: "\(configMap.metadata.namespace ?? "")/ConfigMap/weft-config",
                            message: problem))
                }
            }
        case (weft.v1alpha1.apiVersion, "VirtualService"):
            context.decode(weft.v1alpha1.VirtualService.self, strict: true, into: &result) {
                $0.snapshot.virtualServices.append($1)
            }
        case (weft.v1alpha1.apiVersion, "DestinationPolicy"):
            context.decode(weft.v1alpha1.DestinationPolicy.self, strict: true, into: &result) {
                $0.snapshot.destinationPolicies.append($1)
            }
        case (weft.v1alpha1.apiVersion, "MeshTLSPolicy"):
            context.decode(weft.v1alpha1.MeshTLSPolicy.self, strict: true, into: &result) {
                $0.snapshot.meshTLSPolicies.append($1)
            }
        case (weft.v1alpha1.apiVersion, "AuthorizationPolicy"):
            context.decode(weft.v1alpha1.AuthorizationPolicy.self, strict: true, into: &result) {
                $0.snapshot.authorizationPolicies.append($1)
            }
        default:
            if apiVersion.hasPrefix("\(weft.v1alpha1.group)/") {
                result.problems.append(
                    ManifestProblem(
                        .error, file: file, line: document.startLine,
                        message:
                            "unknown kind \"\(kind)\" in \(apiVersion): Weft serves VirtualService, DestinationPolicy, MeshTLSPolicy and AuthorizationPolicy in \(weft.v1alpha1.apiVersion)"
                    ))
            }
        // Other Kubernetes kinds (ServiceAccount, ReplicaSet, ...) are valid but not read by the mesh.
        }
    }
}
