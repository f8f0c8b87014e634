import Dispatch
import Foundation
import NIOCore
import NIOPosix
import Synchronization
import WeftTesting

/// The package's root directory (tests run from anywhere).
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// What a finished process printed.
struct ProcessResult: Sendable {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs `arguments` (looked up in PATH) to completion, killing it (and its process group) after `timeout`.
/// The time limit is a hang guard: `ip netns add` once took over 25 s while the capture suites created and deleted
/// namespaces in parallel under a full run (the kernel tears namespaces down asynchronously).
func runProcess(_ arguments: [String], timeout: Duration = .seconds(120)) async throws -> ProcessResult {
    let result = try await ChildProcess.run(arguments, timeout: timeout)
    return ProcessResult(status: result.status, stdout: result.stdoutText, stderr: result.stderrText)
}

/// A long-running helper process (a gRPC server, the proxy binary) that prints a first line when ready.
final class BackgroundProcess: Sendable {
    let process: Process
    /// The first line it printed on standard output.
    let firstLine: String

    private init(process: Process, firstLine: String) {
        self.process = process
        self.firstLine = firstLine
    }

    /// Starts `executable` with `arguments` and waits (up to `timeout`) for its first stdout line.
    static func start(
        _ executable: String, _ arguments: [String], timeout: Duration = .seconds(60), waitForLine: Bool = true,
        environment: [String: String] = [:]
    ) async throws -> BackgroundProcess {
        let process = Process()
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        // Children of the test process inherit its blocked signal mask (SIGTERM would never arrive): start them
        // through a one-line exec that clears the mask.
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments =
            [
                "python3", "-c",
                "import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); os.execvp(sys.argv[1], sys.argv[1:])",
                executable,
            ] + arguments
        let stdout = Pipe()
        process.standardOutput = stdout
        try process.run()
        guard waitForLine else {
            return BackgroundProcess(process: process, firstLine: "")
        }
        // Exactly one of the two wins: the first line arriving (0 -> 1) or the hang guard (0 -> 2, then the kill).
        // The reader claims the process before it resumes the waiting task: on a loaded machine that resumption
        // can come late, and the guard must not then kill a process that has answered (a gRPC peer killed after
        // its READY line would leave its port refusing while the test goes on).
        let state = Atomic<Int>(0)
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(Int(timeout.components.seconds * 1000))) {
            [process] in
            if state.compareExchange(expected: 0, desired: 2, ordering: .relaxed).exchanged, process.isRunning {
                kill(process.processIdentifier, SIGKILL)
            }
        }
        let line = await withCheckedContinuation { (continuation: CheckedContinuation<String, Never>) in
            // A thread of its own: blocking reads on Dispatch's global queue took its few threads under a full run.
            Thread.detachNewThread {
                var bytes: [UInt8] = []
                let handle = stdout.fileHandleForReading
                while true {
                    let chunk = handle.readData(ofLength: 1)
                    if chunk.isEmpty || chunk.first == UInt8(ascii: "\n") {
                        break
                    }
                    bytes.append(contentsOf: chunk)
                }
                let answered = state.compareExchange(expected: 0, desired: 1, ordering: .relaxed).exchanged
                continuation.resume(returning: answered ? String(decoding: bytes, as: UTF8.self) : "")
            }
        }
        return BackgroundProcess(process: process, firstLine: line)
    }

    /// Kills it (SIGKILL: children of Foundation's `Process` may not see SIGTERM) without blocking.
    func stop() {
        if self.process.isRunning {
            kill(self.process.processIdentifier, SIGKILL)
        }
    }

    /// Sends `signal` (e.g. SIGTERM to test a drain).
    func signal(_ signal: Int32) {
        kill(self.process.processIdentifier, signal)
    }
}

/// The gRPC test peer (`grpc_peer.py`, grpcio): a server on an ephemeral port, and one-call clients.
enum GRPCPeer {
    static let script = packageRoot.appendingPathComponent("Tests/WeftProxyTests/grpc_peer.py").path

    /// Starts a server named `name`; returns it and its port.
    static func server(name: String) async throws -> (BackgroundProcess, Int) {
        let server = try await BackgroundProcess.start(
            "python3", [Self.script, "server", "--port", "0", "--name", name])
        guard server.firstLine.hasPrefix("READY "), let port = Int(server.firstLine.dropFirst(6)) else {
            server.stop()
            throw HarnessError(message: "grpc peer did not start: \(server.firstLine)")
        }
        return (server, port)
    }

    struct CallResult: Decodable, Sendable {
        var code: String
        var details: String
        var responses: [String]
        var initial: [String: String]
        var trailing: [String: String]
    }

    /// One call through `port` with `:authority` `authority`.
    static func call(
        port: Int, authority: String, method: String, messages: [String] = [], timeout: Double? = nil,
        metadata: [String: String] = [:]
    ) async throws -> CallResult {
        var arguments = [
            "python3", Self.script, "client", "--target", "127.0.0.1:\(port)", "--authority", authority, "--method",
            method,
        ]
        for message in messages {
            arguments += ["--message", message]
        }
        if let timeout {
            arguments += ["--timeout", String(timeout)]
        }
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            arguments += ["--metadata", "\(key)=\(value)"]
        }
        let result = try await runProcess(arguments)
        guard result.status == 0, let line = result.stdout.split(separator: "\n").last else {
            throw HarnessError(message: "grpc client failed: \(result.status) \(result.stderr)")
        }
        return try JSONDecoder().decode(CallResult.self, from: Data(line.utf8))
    }
}

/// A raw TCP server for tunnel tests. `mode` decides what it does with a connection:
/// - `echo`: echoes every byte;
/// - `banner`: writes `hello from server\n` at once (a server-first protocol), then echoes;
/// - `upgrade`: reads an HTTP/1.1 request head, answers `101 Switching Protocols`, then echoes;
/// - `upgradeGreeting`: as `upgrade`, with `hello after 101\n` in the same write as the `101`;
/// - `silent`: reads everything and never answers (an upstream that hangs, for timeouts without races).
final class RawServer: Sendable {
    enum Mode: Sendable {
        case echo
        case banner
        case upgrade
        case upgradeGreeting
        case silent
    }

    let channel: any Channel
    var port: Int { self.channel.localAddress?.port ?? 0 }
    private let counters: RawServerCounters
    /// Bytes read so far, over all connections.
    var bytesReceived: Int { self.counters.received.load(ordering: .relaxed) }
    /// Connections accepted so far.
    var connectionsAccepted: Int { self.counters.accepted.load(ordering: .relaxed) }

    private init(channel: any Channel, counters: RawServerCounters) {
        self.channel = channel
        self.counters = counters
    }

    static func start(_ mode: Mode) async throws -> RawServer {
        let counters = RawServerCounters()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                counters.accepted.add(1, ordering: .relaxed)
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(RawServerHandler(mode, counters: counters))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return RawServer(channel: channel, counters: counters)
    }

    func stop() async {
        try? await self.channel.close()
    }
}

private final class RawServerCounters: Sendable {
    let received = Atomic<Int>(0)
    let accepted = Atomic<Int>(0)
}

private final class RawServerHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let mode: RawServer.Mode
    private let counters: RawServerCounters
    private var upgraded = false
    private var head = ""

    init(_ mode: RawServer.Mode, counters: RawServerCounters) {
        self.mode = mode
        self.counters = counters
    }

    func channelActive(context: ChannelHandlerContext) {
        if self.mode == .banner {
            context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: "hello from server\n")), promise: nil)
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = self.unwrapInboundIn(data)
        self.counters.received.add(buffer.readableBytes, ordering: .relaxed)
        if self.mode == .silent {
            return
        }
        if self.mode == .upgrade || self.mode == .upgradeGreeting, !self.upgraded {
            self.head += buffer.readString(length: buffer.readableBytes) ?? ""
            guard let end = self.head.range(of: "\r\n\r\n") else {
                return
            }
            self.upgraded = true
            let rest = String(self.head[end.upperBound...])
            let greeting = self.mode == .upgradeGreeting ? "hello after 101\n" : ""
            let response =
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\nx-upgraded-by: raw\r\n\r\n"
                + greeting
            context.write(self.wrapOutboundOut(ByteBuffer(string: response)), promise: nil)
            if !rest.isEmpty {
                context.write(self.wrapOutboundOut(ByteBuffer(string: rest)), promise: nil)
            }
            context.flush()
            return
        }
        context.writeAndFlush(self.wrapOutboundOut(buffer), promise: nil)
    }
}

@available(*, unavailable)
extension RawServerHandler: Sendable {}

/// A raw TCP client: connects, optionally sends `send`, and collects what arrives until `until` is contained
/// in it (failing after 60 s, a hang guard). Returns what was read.
func rawConversation(port: Int, steps: [(send: String, until: String)]) async throws -> [String] {
    try await rawConversation(port: port, byteSteps: steps.map { (Array($0.send.utf8), $0.until) })
}

/// `rawConversation` with raw bytes to send (binary protocols such as HTTP/2 frames).
func rawConversation(port: Int, byteSteps steps: [(send: [UInt8], until: String)]) async throws -> [String] {
    let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .connect(host: "127.0.0.1", port: port) { channel in
            channel.eventLoop.makeCompletedFuture {
                try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
            }
        }
    return try await withThrowingTaskGroup(of: [String].self) { group in
        group.addTask {
            try await channel.executeThenClose { inbound, outbound in
                var iterator = inbound.makeAsyncIterator()
                var answers: [String] = []
                for step in steps {
                    if !step.send.isEmpty {
                        try await outbound.write(ByteBuffer(bytes: step.send))
                    }
                    var received = ""
                    while !received.contains(step.until) {
                        guard let buffer = try await iterator.next() else {
                            break
                        }
                        received += String(buffer: buffer)
                    }
                    answers.append(received)
                }
                return answers
            }
        }
        group.addTask {
            try await Task.sleep(for: .seconds(60))
            throw CancellationError()
        }
        defer { group.cancelAll() }
        return try await group.next() ?? []
    }
}
