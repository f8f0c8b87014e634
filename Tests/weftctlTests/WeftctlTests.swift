import Foundation
import KubeModel
import ProxyConfig
import Testing

/// The package root, found from this file's path.
let packageRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent()  // weftctlTests
    .deletingLastPathComponent()  // Tests
    .deletingLastPathComponent()

/// What one run of `weftctl` did.
struct Run {
    var status: Int32
    var stdout: String
    var stderr: String

    var stdoutLines: [String] { self.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) }
}

/// Runs the built `weftctl` with `arguments`, in the package root.
func weftctl(_ arguments: String...) async throws -> Run {
    try await weftctl(arguments: arguments)
}

/// Runs the built `weftctl` with `arguments`, in the package root.
/// The wait happens on a thread of its own: a test blocking in `waitUntilExit` would hold one of the few threads
/// of Swift's cooperative pool (two on a 2-core machine) and starve every other suite running in parallel.
func weftctl(arguments: [String]) async throws -> Run {
    let binary = packageRoot.appendingPathComponent(".build/debug/weftctl")
    try #require(
        FileManager.default.isExecutableFile(atPath: binary.path),
        "weftctl is not built: \(binary.path) is missing. Run `swift build` (or `swift build --build-tests`) first."
    )
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("weftctl-run-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: scratch) }
    // Files, not pipes: a pipe that fills up while the test waits would hang both processes.
    let outURL = scratch.appendingPathComponent("stdout")
    let errURL = scratch.appendingPathComponent("stderr")
    _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
    _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
    let out = try FileHandle(forWritingTo: outURL)
    let err = try FileHandle(forWritingTo: errURL)

    let process = Process()
    process.executableURL = binary
    process.arguments = arguments
    process.currentDirectoryURL = packageRoot
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
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
        stderr: String(decoding: try Data(contentsOf: errURL), as: UTF8.self)
    )
}

/// A fresh temporary folder holding `files` (name -> content), removed after `body`.
func withManifests<T>(_ files: [String: String], _ body: (URL) async throws -> T) async throws -> T {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("weftctl-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    for (name, content) in files {
        try Data(content.utf8).write(to: folder.appendingPathComponent(name))
    }
    return try await body(folder)
}

let catalogService = """
    apiVersion: v1
    kind: Namespace
    metadata: {name: shop, labels: {weft.dev/inject: enabled}}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: catalog, namespace: shop}
    spec:
      selector: {app: catalog}
      ports: [{name: http, port: 80, targetPort: 8080}]
    """

let ninetyPercentSplit = """
    apiVersion: weft.dev/v1alpha1
    kind: VirtualService
    metadata:
      name: catalog-split
      namespace: shop
    spec:
      hosts: [catalog]
      http:
      - route:
        - destination: {host: catalog}
          weight: 60
        - destination: {host: catalog}
          weight: 30
    """

/// The eight Weft resources of the examples.
let exampleResources = [
    "shop/AuthorizationPolicy/deny-debug",
    "shop/AuthorizationPolicy/payments-allow-frontend",
    "shop/DestinationPolicy/catalog",
    "shop/DestinationPolicy/payments",
    "shop/MeshTLSPolicy/default",
    "shop/VirtualService/catalog",
    "shop/VirtualService/payments",
    "weft-system/MeshTLSPolicy/mesh-default",
]

let frontendPod = "shop/frontend-6d8f7b9c4-x2k7p"

@Suite("weftctl analyze")
struct AnalyzeTests {
    @Test("the examples: exit 0, no problems, a table of the 8 resources, all accepted")
    func examples() async throws {
        let run = try await weftctl("analyze", "-f", "manifests/examples")
        #expect(run.status == 0, "stderr: \(run.stderr)")
        #expect(run.stdoutLines.first == "No problems found.")
        let lines = run.stdoutLines
        let header = try #require(lines.firstIndex { $0.hasPrefix("RESOURCE") }, "no table in:\n\(run.stdout)")
        #expect(
            lines[header].split(separator: " ", omittingEmptySubsequences: true)
                == ["RESOURCE", "ACCEPTED", "RESOLVEDREFS", "REASON"])
        let rows = lines[(header + 1)...].filter { !$0.isEmpty }.map {
            $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        }
        #expect(rows.map(\.[0]) == exampleResources)
        for row in rows {
            #expect(row.count == 4 && row[1] == "True" && row[3] == "-", "\(row)")
        }
        // Resources that reference others resolved them.
        #expect(rows.first { $0[0] == "shop/VirtualService/catalog" }?[2] == "True")
        #expect(rows.first { $0[0] == "shop/MeshTLSPolicy/default" }?[2] == "-")
        #expect(run.stderr.isEmpty)
    }

    @Test("weights summing to 90: exit 1 and the located problem")
    func invalidWeights() async throws {
        try await withManifests(["cluster.yaml": catalogService, "routes.yaml": ninetyPercentSplit]) { folder in
            let run = try await weftctl("analyze", "-f", folder.path)
            #expect(run.status == 1)
            let expected = "shop/VirtualService/catalog-split: spec.http[0].route: weights must sum to 100, got 90"
            let matching = run.stdoutLines.filter { $0.hasPrefix(expected) }
            #expect(matching.count == 1, "output:\n\(run.stdout)")
            // The problem names where the field is written: the `route:` key of http[0].
            #expect(matching.first == "\(expected) (\(folder.path)/routes.yaml:9:5)")
            #expect(!run.stdout.contains("No problems found."))
            // The table shows it as not accepted.
            let row = run.stdoutLines.first { $0.hasPrefix("shop/VirtualService/catalog-split ") }
            #expect(row?.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first == "False")
        }
    }

    @Test("-o json: problems and resources")
    func json() async throws {
        let run = try await weftctl("analyze", "-f", "manifests/examples", "-o", "json")
        #expect(run.status == 0)
        let report = try JSONValue.parse(Data(run.stdout.utf8))
        #expect(report["problems"] == .array([]))
        let resources = try #require(report["resources"]?.arrayValue)
        #expect(resources.compactMap { $0["resource"]?.stringValue } == exampleResources)
        let catalog = try #require(resources.first { $0["resource"] == "shop/VirtualService/catalog" })
        #expect(catalog["location"] == "manifests/examples/40-routing.yaml:11")
        let conditions = try #require(catalog["conditions"]?.arrayValue)
        #expect(conditions.compactMap { $0["type"]?.stringValue } == ["Accepted", "ResolvedRefs"])
        #expect(conditions.allSatisfy { $0["status"] == "True" })
    }

    @Test("-o json with a problem: exit 1, the problem with severity, resource, field and message")
    func jsonProblems() async throws {
        try await withManifests(["all.yaml": catalogService + "\n---\n" + ninetyPercentSplit]) { folder in
            let run = try await weftctl("analyze", "-f", folder.path, "-o", "json")
            #expect(run.status == 1)
            let report = try JSONValue.parse(Data(run.stdout.utf8))
            let problems = try #require(report["problems"]?.arrayValue)
            let weights = problems.first { $0["field"] == "spec.http[0].route" }
            #expect(weights?["severity"] == "error")
            #expect(weights?["resource"] == "shop/VirtualService/catalog-split")
            #expect(weights?["message"] == "weights must sum to 100, got 90")
            #expect(weights?["location"] == .string("\(folder.path)/all.yaml:20:5"))
            #expect(
                report["resources"]?.arrayValue?.compactMap { $0["resource"]?.stringValue }
                    == ["shop/VirtualService/catalog-split"])
        }
    }

    @Test("broken YAML: exit 1 and file:line:col: message")
    func brokenYAML() async throws {
        let broken = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n   labels: {a: b}\n"
        try await withManifests(["broken.yaml": broken]) { folder in
            let run = try await weftctl("analyze", "-f", folder.path)
            #expect(run.status == 1)
            let file = folder.appendingPathComponent("broken.yaml").path
            let line = run.stdoutLines.first { $0.hasPrefix("\(file):") }
            #expect(
                line == "\(file):5:10: invalid YAML: mapping values are not allowed in this context",
                "output:\n\(run.stdout)")
        }
    }

    @Test("a missing path: exit 1 and the reason")
    func missingPath() async throws {
        let run = try await weftctl("analyze", "-f", "/nonexistent/weft")
        #expect(run.status == 1)
        #expect(run.stdoutLines.first == "/nonexistent/weft: no such file or folder")
    }

    @Test("usage errors exit non-zero with a message on stderr")
    func usage() async throws {
        // No -f and no cluster to read (KUBECONFIG names a missing file): both ways are named.
        let noFile = try await weftctl(arguments: ["analyze", "--kubeconfig", "/nonexistent/kubeconfig"])
        #expect(noFile.status != 0)
        #expect(noFile.stderr.contains("cannot read the kubeconfig /nonexistent/kubeconfig"), "\(noFile.stderr)")
        #expect(noFile.stderr.contains("or analyze files offline with -f FILE|FOLDER"), "\(noFile.stderr)")
        let badFormat = try await weftctl("analyze", "-f", "manifests/examples", "-o", "yaml")
        #expect(badFormat.status != 0)
        #expect(badFormat.stderr.contains("yaml"))
    }
}

@Suite("weftctl compile")
struct CompileTests {
    @Test("the frontend's config decodes as ProxyConfig, for that pod")
    func frontend() async throws {
        let run = try await weftctl("compile", "-f", "manifests/examples", "--proxy", frontendPod)
        #expect(run.status == 0, "stderr: \(run.stderr)")
        let config = try ProxyConfig.decode(Data(run.stdout.utf8))
        #expect(config.proxy.id == frontendPod)
        #expect(config.proxy.namespace == "shop")
        #expect(config.proxy.name == "frontend-6d8f7b9c4-x2k7p")
        #expect(config.proxy.serviceAccount == "frontend")
        #expect(config.proxy.spiffeID == "spiffe://cluster.local/ns/shop/sa/frontend")
        #expect(config.proxy.addresses == ["10.244.1.12"])
        #expect(config.version.count == 16 && config.version.allSatisfy(\.isHexDigit), "\(config.version)")
        // The frontend calls catalog and payments.
        let hosts = Set(config.outbound.map(\.host))
        #expect(hosts.isSuperset(of: ["catalog.shop.svc.cluster.local", "payments.shop.svc.cluster.local"]))
        // The output is the canonical encoding.
        #expect(run.stdout == String(decoding: try config.encoded(), as: UTF8.self) + "\n")
        #expect(run.stderr.isEmpty)
    }

    @Test("compiling twice gives the same bytes")
    func deterministic() async throws {
        let first = try await weftctl("compile", "-f", "manifests/examples", "--proxy", frontendPod)
        let second = try await weftctl("compile", "-f", "manifests/examples", "--proxy", frontendPod)
        #expect(first.status == 0)
        #expect(first.stdout == second.stdout)
    }

    @Test("an unknown proxy: exit 1, and stderr names the available proxies")
    func unknownProxy() async throws {
        let run = try await weftctl("compile", "-f", "manifests/examples", "--proxy", "shop/nope")
        #expect(run.status == 1)
        #expect(run.stdout.isEmpty)
        let message = run.stderr.trimmingCharacters(in: .newlines)
        #expect(message.hasPrefix("error: no proxy shop/nope: proxies: "), "stderr: \(run.stderr)")
        let proxies = message.components(separatedBy: "proxies: ").last?.components(separatedBy: ", ") ?? []
        #expect(
            proxies == [
                "shop/catalog-v1-7c9f8d6b5-q8tlm", "shop/catalog-v1-7c9f8d6b5-w4rzn", "shop/catalog-v2-5b4d9f7c8-m3t6r",
                frontendPod, "shop/payments-84c6b5d7f9-h4j2v", "shop/payments-84c6b5d7f9-r7n9s",
            ])
    }

    @Test("a bare pod name means the default namespace")
    func bareName() async throws {
        let run = try await weftctl("compile", "-f", "manifests/examples", "--proxy", "frontend-6d8f7b9c4-x2k7p")
        #expect(run.status == 1)
        #expect(run.stderr.hasPrefix("error: no proxy default/frontend-6d8f7b9c4-x2k7p: proxies: "))
    }

    @Test("a malformed --proxy is a usage error")
    func malformedProxy() async throws {
        let run = try await weftctl("compile", "-f", "manifests/examples", "--proxy", "a/b/c")
        #expect(run.status != 0)
        #expect(run.stderr.contains(#"--proxy must be NAMESPACE/POD, got "a/b/c""#))
    }
}
