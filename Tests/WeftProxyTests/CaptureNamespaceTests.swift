import Foundation
import Testing

/// `weft-proxy init` applied for real, in a network namespace the test creates (`ip netns add`) and deletes: only
/// that namespace's nat table is touched. Runs as root with iptables installed (hack/install-test-tools); the
/// suite is disabled, and says why, when not root or when the kernel refuses a nat table in a new namespace.
@Suite(
    "capture in a network namespace",
    .enabled(if: CaptureNamespace.unavailableReason == nil, "\(CaptureNamespace.unavailableReason ?? "")"),
    .serialized)
struct CaptureNamespaceTests {
    @Test func initInstallsTheRulesAndARerunChangesNothing() async throws {
        try await CaptureNamespace.with { namespace in
            let initArguments = [
                "init", "--proxy-uid", "1337", "--outbound-port", "15001", "--inbound-port", "15006",
                "--exclude-inbound-ports", "15020,9100", "--exclude-outbound-cidrs", "10.96.0.0/12",
            ]
            let first = try await namespace.run([ProxyBinaryTests.binary] + initArguments)
            #expect(first.status == 0, "\(first.stderr)")
            let once = try await namespace.natRules()
            #expect(once.contains("-A OUTPUT -p tcp -j WEFT_OUTPUT"), "\(once)")
            #expect(once.contains("-A WEFT_OUTPUT -m owner --uid-owner 1337 -j RETURN"), "\(once)")
            #expect(once.contains("-A WEFT_OUTPUT -d 10.96.0.0/12 -j RETURN"), "\(once)")
            #expect(once.contains("-A WEFT_INBOUND -p tcp -m tcp --dport 9100 -j RETURN"), "\(once)")
            #expect(once.contains("-A WEFT_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006"), "\(once)")

            let second = try await namespace.run([ProxyBinaryTests.binary] + initArguments)
            #expect(second.status == 0, "\(second.stderr)")
            #expect(try await namespace.natRules() == once)
        }
    }

    /// The rules capture: a connection to an address outside the namespace reaches the listener on 15001, which
    /// reads the original destination with SO_ORIGINAL_DST; a connection to an excluded CIDR is not captured.
    @Test func outboundConnectionsReachTheOutboundPortWithTheirOriginalDestination() async throws {
        try await CaptureNamespace.with { namespace in
            for command in [
                ["ip", "link", "add", "weftv0", "type", "veth", "peer", "name", "weftv1"],
                ["ip", "addr", "add", "10.213.0.1/24", "dev", "weftv0"], ["ip", "link", "set", "weftv0", "up"],
                ["ip", "link", "set", "weftv1", "up"],
            ] {
                let result = try await namespace.run(command)
                #expect(result.status == 0, "\(command): \(result.stderr)")
            }
            let initResult = try await namespace.run([
                ProxyBinaryTests.binary, "init", "--exclude-outbound-cidrs", "10.213.0.128/25",
            ])
            #expect(initResult.status == 0, "\(initResult.stderr)")
            // One listener on 15001 that answers each connection with the destination it was meant for, and a
            // client: the captured connection prints that destination; the excluded one is refused (nothing listens).
            let script = """
                socket, struct, threading = map(__import__, ["socket", "struct", "threading"])
                server = socket.socket(); server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                server.bind(("0.0.0.0", 15001)); server.listen(4)
                def serve():
                    connection, _ = server.accept()
                    raw = connection.getsockopt(socket.SOL_IP, 80, 16)
                    port, address = struct.unpack("!2xH4s8x", raw)
                    connection.sendall(("%s:%d" % (socket.inet_ntoa(address), port)).encode()); connection.close()
                threading.Thread(target=serve, daemon=True).start()
                client = socket.create_connection(("10.213.0.7", 8080), timeout=5)
                print("captured", client.recv(100).decode())
                try:
                    socket.create_connection(("10.213.0.200", 8080), timeout=2); print("excluded connected")
                except OSError as error:
                    print("excluded not captured")
                """
            let result = try await namespace.run(["python3", "-c", script])
            #expect(result.stdout.contains("captured 10.213.0.7:8080"), "\(result.stdout) \(result.stderr)")
            #expect(result.stdout.contains("excluded not captured"), "\(result.stdout) \(result.stderr)")
        }
    }
}

/// A network namespace of the test's own, deleted afterwards.
struct CaptureNamespace {
    let name: String

    /// Why the namespace tests cannot run here, or nil when they can (probed once, synchronously).
    static let unavailableReason: String? = {
        guard getuid() == 0 else { return "capture tests need root (ip netns, iptables); not root" }
        let name = "weft-probe-\(getpid())"
        defer { _ = Self.runSync(["timeout", "20", "ip", "netns", "del", name]) }
        guard Self.runSync(["timeout", "20", "ip", "netns", "add", name]) == 0 else {
            return "ip netns add failed (no netns support)"
        }
        guard Self.runSync(["timeout", "20", "ip", "netns", "exec", name, "iptables", "-t", "nat", "-L", "-n"]) == 0
        else {
            return "iptables is missing or the kernel refuses a nat table in a new namespace"
        }
        return nil
    }()

    static func runSync(_ arguments: [String]) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return -1 }
        process.waitUntilExit()
        return process.terminationStatus
    }

    static func with(_ body: (CaptureNamespace) async throws -> Void) async throws {
        let namespace = CaptureNamespace(name: "weft-cap-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        let created = try await runProcess(["ip", "netns", "add", namespace.name])
        try #require(created.status == 0, "\(created.stderr)")
        _ = try await namespace.run(["ip", "link", "set", "lo", "up"])
        do {
            try await body(namespace)
        } catch {
            _ = try? await runProcess(["ip", "netns", "del", namespace.name])
            throw error
        }
        _ = try await runProcess(["ip", "netns", "del", namespace.name])
    }

    func run(_ arguments: [String]) async throws -> ProcessResult {
        try await runProcess(["ip", "netns", "exec", self.name] + arguments)
    }

    /// The nat table's rules, without the counters and comments that change between runs.
    func natRules() async throws -> String {
        let saved = try await self.run(["iptables-save", "-t", "nat"])
        return saved.stdout.split(separator: "\n").filter { !$0.hasPrefix("#") && !$0.hasPrefix(":") }
            .joined(separator: "\n")
    }
}
