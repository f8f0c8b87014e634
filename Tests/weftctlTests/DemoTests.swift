import Foundation
import Testing

/// The parts of `weftctl demo --json`'s summary the tests read.
private struct Summary: Decodable {
    struct Service: Decodable {
        var requests: Int
        var successes: Int
        var failures: Int
        var denied: Int
        var split: [String: Int]?
        var retries: Int?
    }

    struct Proxy: Decodable {
        var id: String
        var inboundRequests: Int
        var mtlsConnections: Int
        var tlsRefused: Int
        var rbacDenied: Int
        var strictInbound: Bool
    }

    struct MutualTLS: Decodable {
        var connections: Int
        var refused: Int
        var inboundRequests: Int
        var strict: Bool
    }

    var requests: Int
    var services: [String: Service]
    var split: [String: Int]
    var mtls: MutualTLS
    var deniedRequests: Int
    var proxies: [Proxy]
}

/// A `weftctl` started in the background, its output in files (a pipe that fills up would block it).
private final class Background {
    let process = Process()
    let stdoutURL: URL
    let stderrURL: URL
    private let scratch: URL

    init(_ arguments: [String]) throws {
        let binary = packageRoot.appendingPathComponent(".build/debug/weftctl")
        try #require(FileManager.default.isExecutableFile(atPath: binary.path), "weftctl is not built")
        self.scratch = FileManager.default.temporaryDirectory.appendingPathComponent("weftctl-demo-\(UUID())")
        try FileManager.default.createDirectory(at: self.scratch, withIntermediateDirectories: true)
        self.stdoutURL = self.scratch.appendingPathComponent("stdout")
        self.stderrURL = self.scratch.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: self.stdoutURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: self.stderrURL.path, contents: nil)
        self.process.executableURL = binary
        self.process.arguments = arguments
        self.process.currentDirectoryURL = packageRoot
        self.process.standardOutput = try FileHandle(forWritingTo: self.stdoutURL)
        self.process.standardError = try FileHandle(forWritingTo: self.stderrURL)
        self.process.standardInput = FileHandle.nullDevice
        try self.process.run()
    }

    deinit {
        if self.process.isRunning { self.process.terminate() }
        try? FileManager.default.removeItem(at: self.scratch)
    }

    var stdout: String { (try? String(contentsOf: self.stdoutURL, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOf: self.stderrURL, encoding: .utf8)) ?? "" }

    /// Polls every 100 ms, for up to `seconds`, until `condition` holds.
    func waitUntil(seconds: Int = 120, _ condition: (Background) -> Bool) async -> Bool {
        for _ in 0..<(seconds * 10) {
            if condition(self) { return true }
            if !self.process.isRunning { return condition(self) }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return false
    }

    /// Waits (up to 60 s, polling) for the process to exit; kills it if it does not. Its exit status, or nil.
    func exitStatus() async -> Int32? {
        for _ in 0..<600 {
            if !self.process.isRunning { return self.process.terminationStatus }
            try? await Task.sleep(for: .milliseconds(100))
        }
        self.process.interrupt()
        kill(self.process.processIdentifier, SIGKILL)
        return nil
    }
}

@Suite("weftctl demo", .serialized)
struct DemoTests {
    /// 300 requests at 100/s (the 120 s duration is only a cap): the catalog split, mTLS between the proxies and
    /// the denied path, from the JSON summary.
    @Test("--json: a 90/10 split, mTLS between the proxies, /admin denied with 403 rbac_denied")
    func jsonSummary() async throws {
        let run = try await weftctl("demo", "--json", "--requests", "300", "--rate", "100", "--duration", "120")
        #expect(run.status == 0, "stderr:\n\(run.stderr)")
        let summary = try JSONDecoder().decode(Summary.self, from: Data(run.stdout.utf8))
        #expect(summary.requests == 300, "stderr:\n\(run.stderr)")
        let frontend = try #require(summary.services["frontend"])
        let catalog = try #require(summary.services["catalog"])
        let payments = try #require(summary.services["payments"])

        // The canary: v1 and v2 answered, about 90/10. With p = 0.1 over at least 200 calls, a v2 share outside
        // 2-25 % is more than 4 standard deviations away (a chance below 1e-6).
        try #require(catalog.requests >= 200, "\(catalog)")
        let v1 = summary.split["v1"] ?? 0
        let v2 = summary.split["v2"] ?? 0
        #expect(v1 + v2 == catalog.successes)
        let share = Double(v2) / Double(max(v1 + v2, 1))
        #expect(share >= 0.02 && share <= 0.25, "v1 \(v1), v2 \(v2)")

        // mTLS: every serving proxy's inbound is STRICT, accepted mTLS connections, and refused none; the requests
        // between proxies went over those connections.
        #expect(summary.mtls.strict)
        #expect(summary.mtls.refused == 0)
        #expect(summary.mtls.inboundRequests >= frontend.requests + catalog.requests + payments.requests)
        for proxy in summary.proxies where proxy.inboundRequests > 0 {
            #expect(proxy.strictInbound, "\(proxy.id)")
            #expect(proxy.mtlsConnections > 0, "\(proxy.id)")
        }
        let served = Set(summary.proxies.filter { $0.inboundRequests > 0 }.map(\.id))
        #expect(served.isSuperset(of: ["demo/frontend", "demo/catalog-v1", "demo/payments", "demo/payments-flaky"]))

        // The denied path: the frontend's proxy said 403 rbac_denied to /admin/orders, and only there.
        #expect(frontend.denied > 0)
        #expect(summary.deniedRequests == frontend.denied)
        #expect(catalog.denied == 0 && payments.denied == 0)
        let frontendProxy = try #require(summary.proxies.first { $0.id == "demo/frontend" })
        #expect(frontendProxy.rbacDenied == frontend.denied)

        // The flaky payments instance made the frontend's proxy retry.
        #expect((payments.retries ?? 0) > 0)
    }

    @Test("SIGINT and SIGTERM stop the demo cleanly, with a summary", arguments: [SIGINT, SIGTERM])
    func signalStops(signal: Int32) async throws {
        let demo = try Background(["demo", "--no-tui", "--rate", "20", "--duration", "300"])
        let traffic = await demo.waitUntil { $0.stdout.contains("sending traffic") && $0.stdout.contains("| payments") }
        #expect(traffic, "stdout:\n\(demo.stdout)\nstderr:\n\(demo.stderr)")
        kill(demo.process.processIdentifier, signal)
        let status = await demo.exitStatus()
        #expect(status == 0, "stdout:\n\(demo.stdout)\nstderr:\n\(demo.stderr)")
        #expect(demo.stdout.contains("Summary: "))
    }

    @Test("bad flags are refused with a message before anything starts")
    func badFlags() async throws {
        for (arguments, message) in [
            (["--rate", "0"], "--rate"), (["--duration", "1e300"], "--duration"), (["--requests", "-1"], "--requests"),
            (["--manifests", "/nonexistent-weft-demo"], "no folder /nonexistent-weft-demo"),
        ] {
            let run = try await weftctl(arguments: ["demo"] + arguments)
            #expect(run.status != 0, "\(arguments)")
            #expect(run.stderr.contains(message), "\(arguments): \(run.stderr)")
        }
    }

    /// The folder is a copy; the test changes the catalog split in it while traffic runs.
    @Test("editing the split in the folder pushes a new version, ACKed, and Programmed follows")
    func liveEdit() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("weft-demo-\(UUID())")
        try FileManager.default.copyItem(at: packageRoot.appendingPathComponent("manifests/demo"), to: folder)
        defer { try? FileManager.default.removeItem(at: folder) }
        let demo = try Background(["demo", "--no-tui", "--rate", "20", "--duration", "300", "--manifests", folder.path])
        let started = await demo.waitUntil { $0.stdout.contains("sending traffic") }
        try #require(started, "stdout:\n\(demo.stdout)\nstderr:\n\(demo.stderr)")
        #expect(demo.stdout.contains("demo/VirtualService/catalog (generation 1): Accepted=True"))

        let routes = folder.appendingPathComponent("20-routing.yaml")
        let text = try String(contentsOf: routes, encoding: .utf8)
        let edited = text.replacingOccurrences(of: "weight: 90", with: "weight: 50")
            .replacingOccurrences(of: "weight: 10", with: "weight: 50")
        #expect(edited != text)
        try edited.write(to: routes, atomically: true, encoding: .utf8)

        let programmed = "demo/VirtualService/catalog (generation 2): Accepted=True ResolvedRefs=True Programmed=True"
        #expect(await demo.waitUntil { $0.stdout.contains(programmed) }, "stdout:\n\(demo.stdout)")
        let output = demo.stdout
        let after = output.components(separatedBy: "sending traffic").last ?? ""
        // The frontend (the catalog's only caller) got a new version and acknowledged it.
        let pushed = after.split(separator: "\n").first { $0.contains("config: new version for") }
        #expect(pushed?.contains("demo/frontend ") == true, "\(output)")
        #expect(after.contains("ACK  demo/frontend runs "), "\(output)")
        kill(demo.process.processIdentifier, SIGINT)
        #expect(await demo.exitStatus() == 0)
    }
}
