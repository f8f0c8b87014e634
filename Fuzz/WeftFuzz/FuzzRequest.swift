import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
import ProxyConfig

/// One fuzz input: the bytes of an HTTP/1.1 request stream, decoded by NIO's HTTP/1 decoder with the proxy's
/// header limits, each request head routed through the fixed config's `RouteTable` (host and authority
/// parsing, header, query and method matchers, path rewrites). Returns normally for every input; a crash,
/// an ASan report or a hang is the finding.
enum FuzzRequest {
    static let table: RouteTable? = {
        guard let data = FuzzConfig.json.data(using: .utf8),
            let config = try? JSONDecoder().decode(ProxyConfig.self, from: data)
        else {
            return nil
        }
        return try? RouteTable(config)
    }()

    /// Returns the route each decoded request head matched (`-` for none), for the replay tool to print.
    @discardableResult
    static func run(_ bytes: UnsafeRawBufferPointer) -> [String] {
        guard let table = Self.table else {
            return []
        }
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderFieldCount = 100
        limits.maxHeaderListSize = 64 << 10
        limits.maxHeaderFieldSize = 64 << 10
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish() }
        let decoder = ByteToMessageHandler(
            HTTPRequestDecoder(
                leftOverBytesStrategy: .forwardBytes, informationalResponseStrategy: .drop, limitConfiguration: limits)
        )
        guard (try? channel.pipeline.syncOperations.addHandler(decoder)) != nil else {
            return []
        }
        var buffer = channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        // The decoder fails the channel on malformed input; what it decoded before that is still routed.
        _ = try? channel.writeInbound(buffer)
        var routes: [String] = []
        while let part = try? channel.readInbound(as: HTTPServerRequestPart.self) {
            guard case .head(let head) = part else {
                continue
            }
            routes.append(Self.route(head, table: table) ?? "-")
        }
        return routes
    }

    static func route(_ head: HTTPRequestHead, table: RouteTable) -> String? {
        let hosts = head.headers["host"]
        var headers: [(name: String, value: String)] = []
        headers.reserveCapacity(head.headers.count)
        for field in head.headers {
            headers.append((name: field.name, value: field.value))
        }
        let request = RequestInfo(
            authority: hosts.first ?? "", port: 15001, method: head.method.rawValue, path: head.uri, headers: headers)
        _ = table.service(for: request)
        guard let match = table.match(request) else {
            return nil
        }
        guard let forward = match.route.forward else {
            return match.route.name
        }
        if let rewrite = forward.rewrite {
            _ = rewrittenPath(head.uri, matched: match.requestMatch, rewrite: rewrite)
        }
        _ = forward.pickBackend(roll: head.uri.utf8.count)
        return match.route.name
    }
}
