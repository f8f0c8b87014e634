import Foundation
import KubeModel
import Testing

/// Runs the built `weftctl` with `stdin` as its standard input (a file, so nothing can block).
func weftctl(stdin: String, _ arguments: String...) async throws -> Run {
    let input = FileManager.default.temporaryDirectory.appendingPathComponent("weftctl-stdin-\(UUID().uuidString)")
    try Data(stdin.utf8).write(to: input)
    defer { try? FileManager.default.removeItem(at: input) }
    let binary = packageRoot.appendingPathComponent(".build/debug/weftctl")
    let shell = "\(binary.path) \(arguments.map { "'\($0)'" }.joined(separator: " ")) < '\(input.path)'"
    return try await run(executable: "/bin/sh", ["-c", shell])
}

/// Runs an executable, output to files (the same care as `weftctl(arguments:)`).
func run(executable: String, _ arguments: [String]) async throws -> Run {
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("weftctl-run-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: scratch) }
    let outURL = scratch.appendingPathComponent("stdout")
    let errURL = scratch.appendingPathComponent("stderr")
    _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
    _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
    let out = try FileHandle(forWritingTo: outURL)
    let err = try FileHandle(forWritingTo: errURL)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.currentDirectoryURL = packageRoot
    process.standardOutput = out
    process.standardError = err
    try process.run()
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        // A thread of its own: blocking waits on Dispatch's global queue took its few threads under a full run.
        Thread.detachNewThread {
            process.waitUntilExit()
            continuation.resume()
        }
    }
    try out.close()
    try err.close()
    return Run(
        status: process.terminationStatus,
        stdout: String(decoding: try Data(contentsOf: outURL), as: UTF8.self),
        stderr: String(decoding: try Data(contentsOf: errURL), as: UTF8.self))
}

func json(_ text: String) throws -> JSONValue {
    try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
}

let twoWorkloads = """
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: catalog, namespace: shop}
    spec:
      selector: {matchLabels: {app: catalog}}
      template:
        metadata: {labels: {app: catalog}}
        spec:
          containers: [{name: app, image: catalog:1}]
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: catalog, namespace: shop}
    spec: {ports: [{port: 80}]}
    ---
    apiVersion: v1
    kind: List
    items:
    - apiVersion: v1
      kind: Pod
      metadata: {name: debug, namespace: shop}
      spec: {containers: [{name: sh, image: busybox}]}
    - apiVersion: batch/v1
      kind: Job
      metadata: {name: once, namespace: shop, annotations: {weft.dev/inject: "false"}}
      spec:
        template:
          metadata: {annotations: {weft.dev/inject: "false"}}
          spec: {restartPolicy: Never, containers: [{name: job, image: job:1}]}
    """

@Suite("weftctl inject")
struct InjectTests {
    @Test("multi-document stdin: the Deployment and the List's Pod injected, the Service and the opted-out Job not")
    func stdin() async throws {
        let run = try await weftctl(stdin: twoWorkloads, "inject", "-f", "-", "-o", "json")
        #expect(run.status == 0, "\(run.stderr)")
        let list = try json(run.stdout)
        let items = try #require(list["items"]?.arrayValue)
        #expect(items.count == 3)
        let template = items[0]["spec"]?["template"]?["spec"]
        // Capture is on by default: weft-init, then the proxy (native sidecar).
        #expect(
            template?["initContainers"]?.arrayValue?.map { $0["name"] } == [
                .string("weft-init"), .string("weft-proxy"),
            ])
        #expect(template?["containers"]?.arrayValue?.first?["name"] == .string("app"))
        #expect(
            items[1]
                == (try json(
                    #"{"apiVersion":"v1","kind":"Service","metadata":{"name":"catalog","namespace":"shop"},"spec":{"ports":[{"port":80}]}}"#
                )))
        let inner = try #require(items[2]["items"]?.arrayValue)
        #expect(
            inner[0]["spec"]?["initContainers"]?.arrayValue?.map { $0["name"] } == [
                .string("weft-init"), .string("weft-proxy"),
            ])
        #expect(inner[1]["spec"]?["template"]?["spec"]?["initContainers"] == nil)
        #expect(run.stderr.contains("Job once: not injected"))
    }

    @Test("YAML out; injecting the output again changes nothing")
    func idempotent() async throws {
        let first = try await weftctl(stdin: twoWorkloads, "inject", "-f", "-")
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stdout.contains("name: weft-proxy"))
        let second = try await weftctl(stdin: first.stdout, "inject", "-f", "-")
        #expect(second.status == 0)
        #expect(second.stdout == first.stdout)
    }

    @Test("a classic sidecar with --no-native-sidecars, the proxy image from --proxy-image")
    func classic() async throws {
        let run = try await weftctl(
            stdin: twoWorkloads, "inject", "-f", "-", "-o", "json", "--no-native-sidecars", "--proxy-image", "r/p:2")
        let items = try #require(try json(run.stdout)["items"]?.arrayValue)
        let proxy = items[0]["spec"]?["template"]?["spec"]?["containers"]?.arrayValue?.first
        #expect(proxy?["name"] == .string("weft-proxy"))
        #expect(proxy?["image"] == .string("r/p:2"))
        // The app is held until the proxy is ready by the proxy's postStart hook.
        #expect(
            proxy?["lifecycle"]?["postStart"]?["exec"]?["command"]?.arrayValue?.prefix(2).map { $0 } == [
                "weft-proxy", "wait",
            ])
    }

    @Test("--no-capture: no weft-init, the proxy on loopback, the app's probes untouched")
    func noCapture() async throws {
        let run = try await weftctl(stdin: twoWorkloads, "inject", "-f", "-", "-o", "json", "--no-capture")
        #expect(run.status == 0, "\(run.stderr)")
        let items = try #require(try json(run.stdout)["items"]?.arrayValue)
        let template = items[0]["spec"]?["template"]?["spec"]
        #expect(template?["initContainers"]?.arrayValue?.map { $0["name"] } == [.string("weft-proxy")])
        let arguments = template?["initContainers"]?.arrayValue?.first?["args"]?.arrayValue ?? []
        #expect(!arguments.contains("--listen"))
    }

    @Test("broken YAML and a malformed annotation: exit 1 with the reason; a missing file too")
    func failures() async throws {
        let broken = try await weftctl(stdin: "kind: Pod\n  bad: [", "inject", "-f", "-")
        #expect(broken.status == 1)
        #expect(broken.stderr.contains("error:"))
        let annotation = try await weftctl(
            stdin: "apiVersion: v1\nkind: Pod\nmetadata: {name: p, annotations: {weft.dev/proxy-cpu: lots}}\n"
                + "spec: {containers: [{name: a, image: a}]}\n", "inject", "-f", "-")
        #expect(annotation.status == 1)
        #expect(annotation.stderr.contains("weft.dev/proxy-cpu"))
        let missing = try await weftctl("inject", "-f", "/nonexistent/pod.yaml")
        #expect(missing.status == 1)
    }
}

@Suite("weftctl install and uninstall")
struct InstallTests {
    func objects(_ arguments: String...) async throws -> [JSONValue] {
        let run = try await weftctl(arguments: ["install", "-o", "json"] + arguments)
        #expect(run.status == 0, "\(run.stderr)")
        return try #require(try json(run.stdout)["items"]?.arrayValue)
    }

    func object(_ objects: [JSONValue], _ kind: String, _ name: String) -> JSONValue? {
        objects.first { $0["kind"]?.stringValue == kind && $0["metadata"]?["name"]?.stringValue == name }
    }

    @Test("the objects of manifests/ kustomization files, the webhooks included")
    func defaults() async throws {
        let objects = try await self.objects()
        let kinds = objects.compactMap { $0["kind"]?.stringValue }
        #expect(kinds.filter { $0 == "CustomResourceDefinition" }.count == 4)
        for kind in [
            "Namespace", "Deployment", "Service", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
        ] {
            #expect(kinds.contains(kind), "\(kind)")
        }
        #expect(self.object(objects, "MutatingWebhookConfiguration", "weft-injector") != nil)
    }

    @Test("every option lands where the controller and the injector read it")
    func options() async throws {
        let objects = try await self.objects(
            "--image-controller", "r/c:1", "--image-proxy", "r/p:1", "--trust-domain", "example.org",
            "--failure-policy", "Ignore", "--native-sidecars", "false")
        let container = self.object(objects, "Deployment", "weft-controller")?["spec"]?["template"]?["spec"]?[
            "containers"]?.arrayValue?.first
        #expect(container?["image"] == .string("r/c:1"))
        #expect(container?["args"]?.arrayValue?.contains(.string("--trust-domain=example.org")) == true)
        let data = self.object(objects, "ConfigMap", "weft-config")?["data"]
        #expect(data?["proxyImage"] == .string("r/p:1"))
        #expect(data?["trustDomain"] == .string("example.org"))
        #expect(data?["nativeSidecars"] == .string("false"))
        for (kind, name) in [
            ("MutatingWebhookConfiguration", "weft-injector"), ("ValidatingWebhookConfiguration", "weft-validator"),
        ] {
            let hooks = self.object(objects, kind, name)?["webhooks"]?.arrayValue ?? []
            #expect(!hooks.isEmpty && hooks.allSatisfy { $0["failurePolicy"] == .string("Ignore") })
        }
    }

    @Test("a bad --failure-policy is refused")
    func badPolicy() async throws {
        let run = try await weftctl("install", "--failure-policy", "Sometimes")
        #expect(run.status != 0)
        #expect(run.stderr.contains("--failure-policy"))
    }

    @Test("uninstall prints kubectl delete lines, the webhooks first, the namespace and the CRDs included")
    func uninstall() async throws {
        let run = try await weftctl("uninstall")
        #expect(run.status == 0, "\(run.stderr)")
        let lines = run.stdoutLines.filter { !$0.isEmpty }
        #expect(
            lines.first
                == "kubectl delete validatingwebhookconfiguration.admissionregistration.k8s.io weft-validator --ignore-not-found"
        )
        #expect(lines.contains("kubectl delete namespace weft-system --ignore-not-found"))
        #expect(lines.contains("kubectl delete deployment.apps weft-controller -n weft-system --ignore-not-found"))
        #expect(lines.filter { $0.contains("customresourcedefinition.apiextensions.k8s.io") }.count == 4)
    }
}
