import ArgumentParser
import Foundation
import KubeModel
import WeftManifests

/// The install manifests, read at run time from the repository's `manifests/` (found next to this source file
/// when weftctl was built from a checkout, else `./manifests`, or `--manifests DIR`), following the
/// kustomization files' `resources` as `kubectl kustomize` does (files and folders; nothing else of kustomize).
struct InstallManifests {
    static let sourceRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("manifests")

    static func locate(_ given: String?) throws -> URL {
        if let given { return URL(fileURLWithPath: given) }
        for candidate in [Self.sourceRoot, URL(fileURLWithPath: "manifests")]
        where FileManager.default.fileExists(atPath: candidate.appendingPathComponent("kustomization.yaml").path) {
            return candidate
        }
        throw ValidationError("manifests/ not found: run from the repository, or pass --manifests DIR")
    }

    /// Every object of the kustomization in `directory`, in its order.
    static func objects(in directory: URL, depth: Int = 0) throws -> [JSONValue] {
        guard depth < 8 else { throw ValidationError("\(directory.path): kustomizations nested too deep") }
        let kustomization = directory.appendingPathComponent("kustomization.yaml")
        let documents = try Self.documents(kustomization)
        let resources = documents.first?["resources"]?.arrayValue?.compactMap(\.stringValue) ?? []
        var objects: [JSONValue] = []
        for resource in resources {
            let url = directory.appendingPathComponent(resource).standardizedFileURL
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
                throw ValidationError("\(kustomization.path): resource \(resource) not found")
            }
            objects += isDirectory.boolValue ? try Self.objects(in: url, depth: depth + 1) : try Self.documents(url)
        }
        return objects
    }

    static func documents(_ url: URL) throws -> [JSONValue] {
        let text = try String(contentsOf: url, encoding: .utf8)
        do {
            return try YAMLJSON.documents(text)
        } catch {
            throw ValidationError("\(url.path): \(error)")
        }
    }
}

/// `weftctl install`: the control plane's manifests with the options applied, to stdout.
struct Install: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the manifests that install Weft (pipe them to kubectl apply -f -).",
        discussion: """
            Renders manifests/ (the CRDs, weft-system, RBAC, weft-config, the controller, its Service and the \
            webhook configurations) with the options applied:
              weftctl install --image-controller registry/weft-controller:1.0 | kubectl apply -f -
            """
    )

    @Option(help: "The weft-controller image.")
    var imageController: String?

    @Option(help: "The weft-proxy image the injector adds (weft-config proxyImage).")
    var imageProxy: String?

    @Option(help: "The mesh's trust domain (the controller's --trust-domain and weft-config trustDomain).")
    var trustDomain: String?

    @Option(help: "failurePolicy of both webhooks: Fail (pods are not created while the webhook is down) or Ignore.")
    var failurePolicy: String?

    @Option(help: "true: the proxy as a native sidecar (Kubernetes 1.29+); false: a classic sidecar container.")
    var nativeSidecars: Bool?

    @Option(name: .shortAndLong, help: "yaml or json (a List).")
    var output: String = "yaml"

    @Option(help: "The manifests folder (default: the repository's manifests/).")
    var manifests: String?

    func validate() throws {
        if let policy = self.failurePolicy, !["Fail", "Ignore"].contains(policy) {
            throw ValidationError("--failure-policy must be Fail or Ignore, got \(policy)")
        }
        guard ["yaml", "json"].contains(self.output) else {
            throw ValidationError("-o must be yaml or json, got \(self.output)")
        }
    }

    func run() throws {
        let objects = try InstallManifests.objects(in: try InstallManifests.locate(self.manifests)).map(self.apply)
        Render.print(objects, output: self.output)
    }

    func apply(_ object: JSONValue) -> JSONValue {
        var object = object
        switch (object["kind"]?.stringValue, object["metadata"]?["name"]?.stringValue) {
        case ("ConfigMap", "weft-config"):
            if let image = self.imageProxy { object = object.setting(["data", "proxyImage"], .string(image)) }
            if let domain = self.trustDomain { object = object.setting(["data", "trustDomain"], .string(domain)) }
            if let native = self.nativeSidecars {
                object = object.setting(["data", "nativeSidecars"], .string(native ? "true" : "false"))
            }
        case ("Deployment", "weft-controller"):
            guard var containers = object["spec"]?["template"]?["spec"]?["containers"]?.arrayValue,
                !containers.isEmpty
            else { return object }
            if let image = self.imageController { containers[0] = containers[0].setting(["image"], .string(image)) }
            if let domain = self.trustDomain {
                let args = containers[0]["args"]?.arrayValue ?? []
                containers[0] = containers[0].setting(["args"], .array(args + [.string("--trust-domain=\(domain)")]))
            }
            object = object.setting(["spec", "template", "spec", "containers"], .array(containers))
        case ("MutatingWebhookConfiguration", _), ("ValidatingWebhookConfiguration", _):
            guard let policy = self.failurePolicy, let hooks = object["webhooks"]?.arrayValue else { return object }
            object = object.setting(["webhooks"], .array(hooks.map { $0.setting(["failurePolicy"], .string(policy)) }))
        default: break
        }
        return object
    }
}

/// `weftctl uninstall`: what `weftctl install` creates, as kubectl delete commands (or the objects as YAML).
struct Uninstall: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the kubectl commands that remove Weft (or, with -o yaml, the objects to delete).",
        discussion: """
            Nothing is deleted: review the commands, then run them (weftctl uninstall | sh), or \
            weftctl uninstall -o yaml | kubectl delete -f -. Deleting the CRDs deletes every Weft resource; \
            weft-ca-root ConfigMaps in the app namespaces and injected sidecars stay until the pods restart.
            """
    )

    @Option(name: .shortAndLong, help: "commands (kubectl delete lines), yaml or json.")
    var output: String = "commands"

    @Option(help: "The manifests folder (default: the repository's manifests/).")
    var manifests: String?

    func validate() throws {
        guard ["commands", "yaml", "json"].contains(self.output) else {
            throw ValidationError("-o must be commands, yaml or json, got \(self.output)")
        }
    }

    func run() throws {
        // Reverse order: the webhooks go first, so no pod creation waits on a controller being removed.
        let objects = try InstallManifests.objects(in: try InstallManifests.locate(self.manifests)).reversed().map {
            object -> JSONValue in
            var meta: JSONObject = ["name": object["metadata"]?["name"] ?? .null]
            if let namespace = object["metadata"]?["namespace"] { meta["namespace"] = namespace }
            return .object([
                "apiVersion": object["apiVersion"] ?? .null, "kind": object["kind"] ?? .null, "metadata": .object(meta),
            ])
        }
        guard self.output == "commands" else { return Render.print(objects, output: self.output) }
        for object in objects {
            let kind = object["kind"]?.stringValue ?? ""
            let group = object["apiVersion"]?.stringValue.flatMap {
                $0.contains("/") ? $0.split(separator: "/").first : nil
            }
            let resource = group.map { "\(kind.lowercased()).\($0)" } ?? kind.lowercased()
            let name = object["metadata"]?["name"]?.stringValue ?? ""
            let namespace = object["metadata"]?["namespace"]?.stringValue.map { " -n \($0)" } ?? ""
            print("kubectl delete \(resource) \(name)\(namespace) --ignore-not-found")
        }
    }
}

enum Render {
    static func print(_ objects: [JSONValue], output: String) {
        if output == "json" {
            let list: JSONValue = .object(["apiVersion": "v1", "kind": "List", "items": .array(objects)])
            Swift.print(String(decoding: (try? JSONEncoder.sorted.encode(list)) ?? Data(), as: UTF8.self))
        } else {
            Swift.print(objects.map { YAMLJSON.emit($0) }.joined(separator: "---\n"), terminator: "")
        }
    }
}

extension JSONValue {
    /// This object with `value` at `path` (objects created on the way).
    func setting(_ path: [String], _ value: JSONValue) -> JSONValue {
        guard let key = path.first else { return value }
        var members = self.objectValue ?? [:]
        members[key] = (members[key] ?? .object([:])).setting(Array(path.dropFirst()), value)
        return .object(members)
    }
}
