import Foundation
import KubeModel
import Testing
import WeftManifests
import WeftTesting

#if canImport(Glibc)
    import Glibc
#endif

/// The `weft-controller` executable as an operator runs it: SIGTERM ends it promptly in both modes (a pod
/// stuck in Terminating for its whole grace period on every rollout is the failure this guards against).
@Suite("weft-controller executable", .serialized)
struct ControllerExecutableTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let binary = root.appendingPathComponent(".build/debug/weft-controller").path
    static let examples = root.appendingPathComponent("manifests/examples").path

    @Test("manifests mode: serves /status on a kept-alive connection, then exits 0 soon after SIGTERM")
    func manifestsModeStopsOnSIGTERM() async throws {
        try await withController(["--manifests", Self.examples]) { controller, port in
            let connection = try RawConnection(port: port)
            #expect(try await eventually { try connection.get("/readyz").hasPrefix("HTTP/1.1 200") })
            let status = try connection.get("/status")
            #expect(status.hasPrefix("HTTP/1.1 200"))
            #expect(status.contains("\"VirtualService\""))
            // The connection stays open (a scraper's would): SIGTERM must still end the process.
            controller.signal(SIGTERM)
            let exit = await controller.waitForExit(within: .seconds(10))
            #expect(exit == .exited(0), "log:\n\(controller.log)")
            connection.close()
        }
    }

    @Test("cluster mode: the leader exits 0 soon after SIGTERM and releases its Lease")
    func clusterModeStopsOnSIGTERMAndReleases() async throws {
        let server = try await FakeAPIServer.start()
        let snapshot = ManifestLoader().load(path: Self.examples).snapshot
        for object in snapshot.namespaces { try server.seed(object) }
        for object in snapshot.services { try server.seed(object) }
        for object in snapshot.virtualServices { try server.seed(object) }
        let kubeconfig = FileManager.default.temporaryDirectory.appendingPathComponent(
            "weft-kubeconfig-\(UInt64.random(in: 0...UInt64.max))")
        try """
        apiVersion: v1
        kind: Config
        clusters: [{name: fake, cluster: {server: "\(server.baseURL)"}}]
        users: [{name: fake, user: {}}]
        contexts: [{name: fake, context: {cluster: fake, user: fake}}]
        current-context: fake
        """.write(to: kubeconfig, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: kubeconfig) }
        do {
            try await withController(["--kubeconfig", kubeconfig.path]) { controller, port in
                let connection = try RawConnection(port: port)
                #expect(try await eventually { try connection.get("/readyz").hasPrefix("HTTP/1.1 200") })
                #expect(
                    try await eventually {
                        let lease = server.get(
                            coordination.v1.Lease.self, namespace: "weft-system", name: "weft-controller")
                        return !(lease?.spec?.holderIdentity ?? "").isEmpty
                    })
                controller.signal(SIGTERM)
                let exit = await controller.waitForExit(within: .seconds(10))
                #expect(exit == .exited(0), "log:\n\(controller.log)")
                connection.close()
                let lease = server.get(coordination.v1.Lease.self, namespace: "weft-system", name: "weft-controller")
                #expect(lease?.spec?.holderIdentity ?? "" == "", "the Lease was not released")
            }
        } catch {
            try? await server.shutdown()
            throw error
        }
        try await server.shutdown()
    }

    @Test("weftctl proxy-status and proxy-config show a proxy on the push stream, from the controller and the proxy")
    func proxyStatusAndConfig() async throws {
        let proxyID = "shop/frontend-6d8f7b9c4-x2k7p"
        // The proxy gets its SVID from the controller's CA with a bootstrap token, and streams over mTLS.
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("weft-state-\(UUID())")
        try FileManager.default.createDirectory(at: state, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: state) }
        try "t0ken shop/frontend\n".write(to: state.appendingPathComponent("tokens"), atomically: true, encoding: .utf8)
        try "t0ken\n".write(to: state.appendingPathComponent("token"), atomically: true, encoding: .utf8)
        try await withController([
            "--manifests", Self.examples, "--push-port", "0", "--state-dir", state.path, "--bootstrap-tokens",
            state.appendingPathComponent("tokens").path,
        ]) { controller, port in
            var pushPort: Int?
            _ = try await eventually {
                pushPort = Self.port(in: controller.log, key: "push.port")
                return pushPort != nil
            }
            let push = try #require(pushPort, "no push port in the log:\n\(controller.log)")
            let proxyLog = FileManager.default.temporaryDirectory.appendingPathComponent(
                "weft-proxy-\(UInt64.random(in: 0...UInt64.max)).log")
            defer { try? FileManager.default.removeItem(at: proxyLog) }
            let proxy = try SpawnedProcess(
                Self.root.appendingPathComponent(".build/debug/weft-proxy").path,
                [
                    "--controller", "127.0.0.1:\(push)", "--proxy-id", proxyID, "--outbound-port", "0",
                    "--inbound-port", "0", "--admin-port", "0", "--concurrency", "1", "--controller-ca",
                    state.appendingPathComponent("trust-bundle.pem").path, "--token-file",
                    state.appendingPathComponent("token").path, "--service-account", "frontend",
                ], output: proxyLog.path)
            defer { proxy.kill() }
            let base = "http://127.0.0.1:\(port)"
            var status = ""
            #expect(
                try await eventually {
                    status = try Self.weftctl(["proxy-status", "--controller", base]).output
                    return status.contains(proxyID) && status.contains("SYNCED")
                }, "\(status)\n\(proxy.log)")
            let header = try #require(status.split(separator: "\n").first)
            #expect(header.hasPrefix("PROXY") && header.contains("ACKED") && header.contains("STATUS"))
            // The other proxies of the example never connected.
            #expect(status.contains("shop/catalog-v1-7c9f8d6b5-q8tlm") && status.contains("DISCONNECTED"))
            let json = try Self.weftctl(["proxy-status", "--controller", base, "-o", "json"]).output
            #expect(json.contains("\"status\" : \"SYNCED\""))

            let fromController = try Self.weftctl(["proxy-config", proxyID, "--controller", base])
            #expect(fromController.status == .exited(0))
            #expect(fromController.output.contains("\"id\" : \"\(proxyID)\""))
            let admin = try #require(Self.port(in: proxy.log, key: "http.port"), "\(proxy.log)")
            // The proxy's /config_dump holds the config as pushed (compact JSON).
            let fromProxy = try Self.weftctl(["proxy-config", proxyID, "--from-proxy", "http://127.0.0.1:\(admin)"])
            #expect(fromProxy.output.contains("\"id\":\"\(proxyID)\""))
            // Both sides run the same version.
            let version = try #require(fromController.output.firstMatch(of: #/"version" : "([0-9a-f]+)"/#)?.1)
            #expect(fromProxy.output.contains("\"version\":\"\(version)\""), "\(fromProxy.output.prefix(300))")
            let missing = try Self.weftctl(["proxy-config", "shop/nope", "--controller", base])
            #expect(missing.status == .exited(1))
            #expect(missing.output.contains("no config for proxy shop/nope"))
        }
    }

    /// Runs the built weftctl to completion; its output (stdout and stderr) and how it ended.
    static func weftctl(_ arguments: [String]) throws -> (output: String, status: SpawnedProcess.Exit) {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent(
            "weftctl-\(UInt64.random(in: 0...UInt64.max)).log")
        defer { try? FileManager.default.removeItem(at: log) }
        let process = try SpawnedProcess(
            Self.root.appendingPathComponent(".build/debug/weftctl").path, arguments, output: log.path)
        var status: Int32 = 0
        waitpid(process.pid, &status, 0)
        let signal = status & 0x7f
        return (process.log, signal == 0 ? .exited((status >> 8) & 0xff) : .signalled(signal))
    }

    /// The first `key=N` or `"key":"N"` in a log line that says `listening`.
    static func port(in log: String, key: String) -> Int? {
        let escaped = key.replacingOccurrences(of: ".", with: "\\.")
        guard let pattern = try? Regex("\"?\(escaped)\"?[=:]\"?(\\d+)") else { return nil }
        for line in log.split(separator: "\n") where line.contains("listening") {
            if let match = line.firstMatch(of: pattern), let text = match.output[1].substring {
                return Int(text)
            }
        }
        return nil
    }

    /// Starts the controller with `arguments` on free ports of 127.0.0.1 (HTTP, and push unless `arguments`
    /// names one: a fixed port taken by anything else would stop it) and runs `body` with it and the HTTP port it
    /// bound; kills it afterwards if it still runs.
    func withController(
        _ arguments: [String], _ body: (SpawnedProcess, Int) async throws -> Void
    ) async throws {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent(
            "weft-controller-\(UInt64.random(in: 0...UInt64.max)).log")
        defer { try? FileManager.default.removeItem(at: log) }
        let controller = try SpawnedProcess(
            Self.binary,
            arguments + (arguments.contains("--push-port") ? [] : ["--push-port", "0"])
                + ["--metrics-port", "0", "--webhook-port", "0", "--listen", "127.0.0.1", "--log-format", "json"],
            output: log.path)
        defer { controller.kill() }
        var port: Int?
        _ = try await eventually {
            port = Self.listeningPort(in: controller.log)
            return port != nil
        }
        let bound = try #require(port, "no listening line in the log:\n\(controller.log)")
        do {
            try await body(controller, bound)
        } catch {
            throw SpawnedProcess.SpawnError(message: "\(error)\ncontroller log:\n\(controller.log)")
        }
    }

    /// The `http.port` of the JSON log line `listening`.
    static func listeningPort(in log: String) -> Int? {
        for line in log.split(separator: "\n") where line.contains("\"listening\"") {
            guard let match = line.firstMatch(of: #/"http\.port":"?(\d+)/#) else { continue }
            return Int(match.1)
        }
        return nil
    }

    /// Polls `condition` every 20 ms for at most 60 s (a cap reached only when the test fails).
    func eventually(_ condition: () throws -> Bool) async throws -> Bool {
        let clock = ContinuousClock()
        let end = clock.now.advanced(by: .seconds(60))
        while clock.now < end {
            if (try? condition()) == true { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return try condition()
    }
}

/// A child process started with `posix_spawn`, its signal mask cleared (the test process blocks signals,
/// and a child inherits the mask: SIGTERM would never arrive) and its output (stdout and stderr) in a file.
final class SpawnedProcess: Sendable {
    enum Exit: Equatable, Sendable {
        case exited(Int32)
        case signalled(Int32)
        case running
    }

    let pid: pid_t
    let outputPath: String

    init(_ executable: String, _ arguments: [String], output: String) throws {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGQUIT] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        let argv = ([executable] + arguments).map { strdup($0) }
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv + [nil], environ)
        guard result == 0 else {
            throw SpawnError(message: "posix_spawn \(executable): \(String(cString: strerror(result)))")
        }
        self.pid = pid
        self.outputPath = output
    }

    struct SpawnError: Error, CustomStringConvertible {
        var message: String
        var description: String { self.message }
    }

    /// What it printed so far.
    var log: String { (try? String(contentsOfFile: self.outputPath, encoding: .utf8)) ?? "" }

    func signal(_ signal: Int32) {
        Glibc.kill(self.pid, signal)
    }

    /// Waits (polling every 20 ms) until it exits or `timeout` passes.
    func waitForExit(within timeout: Duration) async -> Exit {
        let clock = ContinuousClock()
        let end = clock.now.advanced(by: timeout)
        while true {
            var status: Int32 = 0
            if waitpid(self.pid, &status, WNOHANG) == self.pid {
                let signal = status & 0x7f
                return signal == 0 ? .exited((status >> 8) & 0xff) : .signalled(signal)
            }
            guard clock.now < end else { return .running }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// SIGKILL, and reaps it.
    func kill() {
        var status: Int32 = 0
        if waitpid(self.pid, &status, WNOHANG) == 0 {
            Glibc.kill(self.pid, SIGKILL)
            waitpid(self.pid, &status, 0)
        }
    }
}

/// One kept-alive HTTP/1.1 connection to 127.0.0.1 with blocking reads (5 s timeout each).
final class RawConnection {
    private let socket: Int32

    init(port: Int) throws {
        self.socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(self.socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(self.socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            Glibc.close(self.socket)
            throw SpawnedProcess.SpawnError(message: "connect to 127.0.0.1:\(port) failed")
        }
    }

    /// Sends a keep-alive GET and reads one response (head and its content-length body).
    func get(_ path: String) throws -> String {
        let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        guard request.withUnsafeBytes({ send(self.socket, $0.baseAddress, $0.count, 0) }) == request.count else {
            throw SpawnedProcess.SpawnError(message: "send failed")
        }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let text = String(decoding: received, as: UTF8.self)
            if let end = text.range(of: "\r\n\r\n") {
                let head = text[..<end.lowerBound].lowercased()
                let length = head.firstMatch(of: #/content-length: *(\d+)/#).flatMap { Int($0.1) } ?? 0
                if received.count >= text.utf8.distance(from: text.startIndex, to: end.upperBound) + length {
                    return text
                }
            }
            let count = buffer.withUnsafeMutableBytes { recv(self.socket, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { throw SpawnedProcess.SpawnError(message: "the connection ended") }
            received += buffer[0..<count]
        }
    }

    func close() {
        Glibc.close(self.socket)
    }
}
