import ArgumentParser
import Foundation
import KubeModel
import WeftCompiler
import WeftManifests

/// `weftctl inject -f FILE|-`: manual sidecar injection, for clusters without the webhook (as `linkerd inject`).
struct Inject: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Add the weft-proxy sidecar to Pods, Deployments, StatefulSets, DaemonSets, Jobs and Lists.",
        discussion: """
            Reads YAML or JSON (several documents, or a List), injects every pod and pod template as the \
            webhook would, and prints the result (YAML, or -o json). Objects of other kinds and pods that opt \
            out (weft.dev/inject: "false", host network, kube-system, the root namespace) pass through \
            unchanged; an object already injected is not injected again. Example:
              kubectl get deploy catalog -n shop -o yaml | weftctl inject -f - | kubectl apply -f -
            """
    )

    @Option(name: .shortAndLong, help: "A manifest file, or - for stdin.")
    var filename: String

    @Option(name: .shortAndLong, help: "yaml or json.")
    var output: String = "yaml"

    @Option(help: "The weft-proxy image.")
    var proxyImage: String = InjectionSettings().proxyImage

    @Option(help: "The mesh's trust domain.")
    var trustDomain: String = InjectionSettings().trustDomain

    @Option(help: "The controller's namespace.")
    var controllerNamespace: String = InjectionSettings().rootNamespace

    @Flag(inversion: .prefixedNo, help: "Native sidecar (Kubernetes 1.29+); --no-native-sidecars: classic.")
    var nativeSidecars: Bool = true

    @Flag(
        inversion: .prefixedNo,
        help: "Transparent capture (the weft-init container, app probes via the status port); --no-capture: none.")
    var capture: Bool = true

    func validate() throws {
        guard ["yaml", "json"].contains(self.output) else {
            throw ValidationError("-o must be yaml or json, got \(self.output)")
        }
    }

    func run() throws {
        let text: String
        do {
            let data =
                self.filename == "-"
                ? FileHandle.standardInput.readDataToEndOfFile()
                : try Data(contentsOf: URL(fileURLWithPath: self.filename))
            guard data.count <= ManifestLimits.maxFileBytes, let decoded = String(data: data, encoding: .utf8)
            else {
                throw ValidationError("\(self.filename): not UTF-8 text, or over \(ManifestLimits.maxFileBytes) bytes")
            }
            text = decoded
        } catch let error as ValidationError {
            throw error
        } catch {
            Self.fail("\(self.filename): \(error.localizedDescription)")
        }
        let documents: [JSONValue]
        do {
            documents = try YAMLJSON.documents(text)
        } catch {
            Self.fail("\(self.filename): \(error)")
        }
        let settings = InjectionSettings(
            proxyImage: self.proxyImage, nativeSidecars: self.nativeSidecars, capture: self.capture,
            controllerAddress: "weft-controller.\(self.controllerNamespace).svc:15012", trustDomain: self.trustDomain,
            rootNamespace: self.controllerNamespace)
        var out: [JSONValue] = []
        var failed = false
        for (index, document) in documents.enumerated() {
            do {
                out.append(try self.inject(document, settings: settings))
            } catch {
                FileHandle.standardError.write(Data("error: document \(index + 1): \(error)\n".utf8))
                failed = true
            }
        }
        if failed { throw ExitCode(1) }
        if self.output == "json" {
            let value = out.count == 1 ? out[0] : .object(["apiVersion": "v1", "kind": "List", "items": .array(out)])
            print(String(decoding: (try? JSONEncoder.sorted.encode(value)) ?? Data(), as: UTF8.self))
        } else {
            print(out.map { YAMLJSON.emit($0) }.joined(separator: "---\n"), terminator: "")
        }
    }

    /// One object: a List's items one by one; kinds without pods as they are.
    func inject(_ object: JSONValue, settings: InjectionSettings) throws(InjectionError) -> JSONValue {
        let kind = object["kind"]?.stringValue ?? ""
        if kind == "List" || kind.hasSuffix("List"), case .object(var members) = object,
            let items = members["items"]?.arrayValue
        {
            var injected: [JSONValue] = []
            for item in items { injected.append(try self.inject(item, settings: settings)) }
            members["items"] = .array(injected)
            return .object(members)
        }
        guard kind == "Pod" || Self.workloads.contains(kind) else { return object }
        // Manual injection is the opt-in: inject unless the pod opts out, as if the namespace were labelled.
        let result = try Injector.inject(
            object: object, namespaceLabels: [Injector.Annotations.inject: "enabled"], settings: settings)
        for warning in result.warnings { FileHandle.standardError.write(Data("warning: \(warning)\n".utf8)) }
        if let reason = result.skipped {
            let name = object["metadata"]?["name"]?.stringValue ?? "?"
            FileHandle.standardError.write(Data("\(kind) \(name): not injected: \(reason)\n".utf8))
        }
        return result.object
    }

    static let workloads: Set<String> = [
        "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Job", "CronJob",
    ]

    static func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("error: \(message)\n".utf8))
        Inject.exit(withError: ExitCode(1))
    }
}

extension JSONEncoder {
    static var sorted: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}
