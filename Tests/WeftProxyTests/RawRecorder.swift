import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// A raw-socket HTTP/1.1 upstream that parses what it receives byte by byte, strictly (RFC 9112 §6: exactly one
/// `content-length` or `transfer-encoding: chunked`, never both; no framing means no body), and records every
/// request it sees, with the framing it came with. Whatever does not parse as a well-framed request is recorded as
/// a problem and the connection closes. It answers each complete request with `respond` (by default `200` with body
/// `<method> <target> <body bytes>`).
///
/// Tests assert `requests` (one per client request, nothing smuggled) and `problems` (empty), and often
/// `connections == 0`: nothing was dialled at all. For that to hold under a full parallel run, a recorder listens on
/// a loopback address of its own, `ownHost` (127.0.0.0/8 is all loopback), not on 127.0.0.1: another test that
/// connects to a port it freed (a stopped upstream, a released port) reaches 127.0.0.1 only. Once, under a full run,
/// a smuggling test's recorder on 127.0.0.1 was sent a `GET /` that no request of that test had made.
final class RawRecorder: Sendable {
    /// The address recorders listen on unless told otherwise.
    static let ownHost = "127.0.0.41"

    struct Request: Sendable, CustomStringConvertible {
        var method: String
        var target: String
        /// Header fields as received (names as sent).
        var headers: [(name: String, value: String)]
        /// `content-length`, `chunked` or `none`.
        var framing: String
        var body: String
        /// The connection it came on (1, 2, ...).
        var connection: Int

        func header(_ name: String) -> String? {
            self.headers.first { $0.name.lowercased() == name.lowercased() }?.value
        }

        func has(_ name: String) -> Bool { self.header(name) != nil }

        var description: String { "\(self.method) \(self.target) [\(self.framing)] \(self.body.utf8.count) bytes" }
    }

    typealias Responder = @Sendable (Request) -> String

    let channel: any Channel
    private let log: RecorderLog

    var port: Int { self.channel.localAddress?.port ?? 0 }
    /// The address it listens on: the endpoint address of a cluster that leads to it.
    let host: String
    var requests: [Request] { self.log.state.withLock { $0.requests } }
    var problems: [String] { self.log.state.withLock { $0.problems } }
    var connections: Int { self.log.state.withLock { $0.connections } }

    private init(channel: any Channel, host: String, log: RecorderLog) {
        self.channel = channel
        self.host = host
        self.log = log
    }

    static func start(host: String = RawRecorder.ownHost, respond: Responder? = nil) async throws -> RawRecorder {
        let log = RecorderLog()
        let responder =
            respond ?? { request in
                let body = "\(request.method) \(request.target) \(request.body.utf8.count)"
                return "HTTP/1.1 200 OK\r\ncontent-length: \(body.utf8.count)\r\nx-recorded: yes\r\n\r\n\(body)"
            }
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let number = log.state.withLock {
                        $0.connections += 1
                        return $0.connections
                    }
                    try channel.pipeline.syncOperations.addHandler(
                        RecorderHandler(log: log, connection: number, respond: responder))
                }
            }
            .bind(host: host, port: 0).get()
        return RawRecorder(channel: channel, host: host, log: log)
    }

    func stop() async {
        try? await self.channel.close()
    }
}

private final class RecorderLog: Sendable {
    struct State {
        var requests: [RawRecorder.Request] = []
        var problems: [String] = []
        var connections = 0
    }

    let state = Mutex(State())
}

private final class RecorderHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let log: RecorderLog
    private let connection: Int
    private let respond: RawRecorder.Responder
    private var bytes: [UInt8] = []

    init(log: RecorderLog, connection: Int, respond: @escaping RawRecorder.Responder) {
        self.log = log
        self.connection = connection
        self.respond = respond
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = self.unwrapInboundIn(data)
        self.bytes += buffer.readableBytesView
        while true {
            switch self.parse() {
            case .incomplete:
                return
            case .problem(let problem):
                self.log.state.withLock { $0.problems.append("connection \(self.connection): \(problem)") }
                context.close(promise: nil)
                return
            case .request(let request, let consumed):
                self.bytes.removeFirst(consumed)
                self.log.state.withLock { $0.requests.append(request) }
                context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: self.respond(request))), promise: nil)
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !self.bytes.isEmpty {
            let text = String(decoding: self.bytes.prefix(200), as: UTF8.self)
            self.log.state.withLock {
                $0.problems.append("connection \(self.connection): \(self.bytes.count) bytes left unparsed: \(text)")
            }
        }
        context.fireChannelInactive()
    }

    private enum Parsed {
        case incomplete
        case problem(String)
        case request(RawRecorder.Request, consumed: Int)
    }

    private static let crlf: [UInt8] = [13, 10]

    private func find(_ needle: [UInt8], from start: Int) -> Int? {
        guard self.bytes.count >= needle.count, start <= self.bytes.count - needle.count else {
            return nil
        }
        for index in start...(self.bytes.count - needle.count)
        where self.bytes[index] == needle[0] && Array(self.bytes[index..<index + needle.count]) == needle {
            return index
        }
        return nil
    }

    private func parse() -> Parsed {
        guard !self.bytes.isEmpty else {
            return .incomplete
        }
        guard let headEnd = self.find([13, 10, 13, 10], from: 0) else {
            return .incomplete
        }
        let head = String(decoding: self.bytes[0..<headEnd], as: UTF8.self)
        var lines = head.components(separatedBy: "\r\n")
        let requestLine = lines.removeFirst().split(separator: " ", omittingEmptySubsequences: false)
        guard requestLine.count == 3, requestLine[2] == "HTTP/1.1" || requestLine[2] == "HTTP/1.0" else {
            return .problem("bad request line: \(head.prefix(200))")
        }
        var headers: [(name: String, value: String)] = []
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else {
                return .problem("bad header line: \(line)")
            }
            let name = String(line[..<colon])
            let value = line[line.index(after: colon)...].trimmingCharacters(in: [" ", "\t"])
            guard !name.isEmpty, !name.contains(" ") else {
                return .problem("bad header name: \(line)")
            }
            headers.append((name, value))
        }
        let lengths = headers.filter { $0.name.lowercased() == "content-length" }.map(\.value)
        let codings = headers.filter { $0.name.lowercased() == "transfer-encoding" }.map(\.value)
        var request = RawRecorder.Request(
            method: String(requestLine[0]), target: String(requestLine[1]), headers: headers, framing: "none", body: "",
            connection: self.connection)
        let bodyStart = headEnd + 4
        if !lengths.isEmpty, !codings.isEmpty {
            return .problem("both content-length and transfer-encoding: \(head.prefix(200))")
        }
        if !codings.isEmpty {
            guard codings.count == 1, codings[0].lowercased() == "chunked" else {
                return .problem("transfer-encoding other than chunked: \(codings)")
            }
            request.framing = "chunked"
            var position = bodyStart
            var body: [UInt8] = []
            while true {
                guard let lineEnd = self.find(Self.crlf, from: position) else {
                    return .incomplete
                }
                let sizeText = String(decoding: self.bytes[position..<lineEnd], as: UTF8.self)
                guard let size = Int(sizeText, radix: 16), size >= 0 else {
                    return .problem("bad chunk size: \(sizeText)")
                }
                position = lineEnd + 2
                if size == 0 {
                    // No trailers expected: the terminating CRLF.
                    guard self.bytes.count >= position + 2 else {
                        return .incomplete
                    }
                    guard self.bytes[position] == 13, self.bytes[position + 1] == 10 else {
                        return .problem("trailers or garbage after the last chunk")
                    }
                    request.body = String(decoding: body, as: UTF8.self)
                    return .request(request, consumed: position + 2)
                }
                guard self.bytes.count >= position + size + 2 else {
                    return .incomplete
                }
                body += self.bytes[position..<position + size]
                guard self.bytes[position + size] == 13, self.bytes[position + size + 1] == 10 else {
                    return .problem("chunk not followed by CRLF")
                }
                position += size + 2
            }
        }
        if !lengths.isEmpty {
            guard lengths.count == 1, let length = Int(lengths[0]), length >= 0 else {
                return .problem("bad content-length: \(lengths)")
            }
            request.framing = "content-length"
            guard self.bytes.count >= bodyStart + length else {
                return .incomplete
            }
            request.body = String(decoding: self.bytes[bodyStart..<bodyStart + length], as: UTF8.self)
            return .request(request, consumed: bodyStart + length)
        }
        return .request(request, consumed: bodyStart)
    }
}

@available(*, unavailable)
extension RecorderHandler: Sendable {}
