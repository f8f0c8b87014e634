import Logging
import NIOCore
import NIOPosix
import Testing
import WeftController
import WeftHTTP

/// Servers cancelled while clients are connecting. NIO traps ("Deinited NIOAsyncWriter without calling
/// finish()") on a connection its listener accepted but a cancelled accept loop never took: once, a proxy that
/// reconnected as a test cancelled the controller took the whole CI run down. Each round cancels a server
/// while a burst of connections is arriving; without `CancellationSafeServing` the test process crashes within
/// a few rounds (measured: 3 runs of 30 rounds crashed 3 times for each server; with it, 900 rounds each passed).
@Suite("Servers cancelled while clients connect")
struct ServerCancellationTests {
    static let logger = Logger(label: "weft.test.cancel")
    static let rounds = 30

    @Test func endpointServer() async throws {
        for round in 0..<Self.rounds {
            // Each round's server answers with its own token, so that a listener another test opened on the
            // freed port (tests run in parallel and ports are ephemeral) is not taken for a leaked one.
            // And a loopback address of its own, as for the push server: its bursts and its `GET /` after the
            // cancellation go to a freed port, which must not be another test's 127.0.0.1 listener (a smuggling
            // test's recorder once got a `GET /` that, by all signs, came from here).
            let token = "round-\(round)-\(UInt64.random(in: 0...UInt64.max))"
            let host = Self.ownLoopbackHost()
            let server = EndpointServer(host: host, port: 0, logger: Self.logger) { _ in .init(.ok, token) }
            try await Self.cancelWhileConnecting(
                host: host, run: { try await server.run() }, port: { server.listeningPort },
                stillServes: { port in
                    await Self.httpBody(host: host, port, within: .seconds(5))?.contains(token) == true
                })
        }
    }

    @Test func pushServer() async throws {
        for _ in 0..<Self.rounds {
            // A loopback address of its own (127.0.0.0/8 is all loopback): a listener another test opens on the
            // freed port binds 127.0.0.1, and once answered the "still serves" probe for this one (gRPC answers no
            // token the way the endpoint server's does).
            let host = Self.ownLoopbackHost()
            let server = ConfigPushServer(
                host: host, port: 0, hub: PushHub(logger: Self.logger), logger: Self.logger)
            try await Self.cancelWhileConnecting(
                host: host, run: { try await server.run() }, port: { server.listeningPort },
                stillServes: { port in await Self.connectAndClose(host: host, port) })
        }
    }

    /// A random address in 127.0.0.0/8 other than 127.0.0.1 (all of it is loopback on Linux).
    static func ownLoopbackHost() -> String {
        "127.\(UInt8.random(in: 1...254)).\(UInt8.random(in: 1...254)).\(UInt8.random(in: 2...254))"
    }

    /// Starts `run`, opens connections to its port in bursts and cancels it once the first burst is accepted;
    /// then `run` must have ended and `stillServes` (whether the server still answers on its port) be false.
    static func cancelWhileConnecting(
        host: String = "127.0.0.1", run: @escaping @Sendable () async throws -> Void,
        port: @escaping @Sendable () -> Int?,
        stillServes: @Sendable (Int) async -> Bool
    ) async throws {
        let ended = try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try? await run()
                return true
            }
            let bound = try #require(await eventually { port() })
            group.addTask {
                // Bursts of 16 concurrent connects, until the listener refuses (at most 50 bursts).
                for _ in 0..<50 {
                    let refused = await withTaskGroup(of: Bool.self) { burst in
                        for _ in 0..<16 { burst.addTask { await Self.connectAndClose(host: host, bound) == false } }
                        return await burst.reduce(false) { $0 || $1 }
                    }
                    if refused { break }
                }
                return false
            }
            // The first burst is on its way: cancel the server (and the connector) now.
            try await Task.sleep(for: .milliseconds(2))
            group.cancelAll()
            var serverEnded = false
            for try await finished in group where finished { serverEnded = true }
            return serverEnded
        }
        #expect(ended)
        #expect(await stillServes(try #require(port())) == false, "the listener outlived its server")
    }

    /// The response to `GET /` on `host`:`port` (head and body), or nil when no connection opened or no
    /// answer ended `within` (a stranger's listener may never answer).
    static func httpBody(host: String, _ port: Int, within limit: Duration) async -> String? {
        await withTaskGroup(of: String?.self) { group in
            group.addTask { await Self.httpBody(host: host, port) }
            group.addTask {
                try? await Task.sleep(for: limit)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    static func httpBody(host: String, _ port: Int) async -> String? {
        do {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.seconds(2))
                .connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
            return try await channel.executeThenClose { inbound, outbound in
                try await outbound.write(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
                var text = ""
                for try await chunk in inbound { text += String(buffer: chunk) }
                return text
            }
        } catch {
            return nil
        }
    }

    /// Whether a TCP connection to `host`:`port` opened (it is closed at once).
    static func connectAndClose(host: String = "127.0.0.1", _ port: Int) async -> Bool {
        do {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.seconds(2))
                .connect(host: host, port: port).get()
            try? await channel.close()
            return true
        } catch {
            return false
        }
    }
}
