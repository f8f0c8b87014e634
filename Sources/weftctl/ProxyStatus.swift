import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore

/// `weftctl proxy-status`: each proxy's sent and acknowledged config versions, from the controller.
struct ProxyStatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy-status",
        abstract: "List every proxy the controller knows: identity, connection, sent and acknowledged versions.",
        discussion: """
            Reads the controller's /proxies (its HTTP port, 15014: --controller, or in a cluster the weft-controller \
            Service through the API server, with --kubeconfig and --context). STATUS is SYNCED (runs the newest version), \
            STALE (connected; the newest version is on its way), NACKED (refused the newest version and runs an \
            older one; the error is shown) or DISCONNECTED (no stream to this controller).
            """
    )

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case table
        case json
    }

    @OptionGroup var controller: ControllerOptions

    @Option(name: .shortAndLong, help: "Only the proxies of this namespace.")
    var namespace: String?

    @Option(name: .shortAndLong, help: "Output format: table or json.")
    var output: Format = .table

    struct Proxy: Codable {
        var id: String
        var identity: String
        var build: String?
        var connectedSince: String?
        var sent: String?
        var acknowledged: String?
        var desired: String
        var status: String
        var error: String?
        /// The controller replica it streams from, when another than the one asked.
        var replica: String?
    }

    func run() async throws {
        let body = try await self.controller.get("/proxies")
        if self.output == .json && self.namespace == nil {
            print(String(decoding: body, as: UTF8.self), terminator: "")
            return
        }
        var proxies = try JSONDecoder().decode([Proxy].self, from: Data(body))
        if let namespace = self.namespace {
            proxies = proxies.filter { $0.id.hasPrefix(namespace + "/") }
        }
        switch self.output {
        case .json:
            print(String(decoding: try JSONEncoder.sorted.encode(proxies), as: UTF8.self))
        case .table:
            print(Self.table(proxies), terminator: "")
        }
    }

    static func table(_ proxies: [Proxy]) -> String {
        var rows = [["PROXY", "IDENTITY", "CONNECTED SINCE", "SENT", "ACKED", "STATUS"]]
        for proxy in proxies {
            var status = proxy.status
            if let error = proxy.error, proxy.status == "NACKED" { status += " (\(error))" }
            if let replica = proxy.replica { status += " via \(replica)" }
            rows.append([
                proxy.id, proxy.identity, proxy.connectedSince ?? "-", proxy.sent ?? "-", proxy.acknowledged ?? "-",
                status,
            ])
        }
        return alignedTable(rows)
    }
}

/// `weftctl proxy-config NAMESPACE/POD`: the config a proxy runs.
struct ProxyConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy-config",
        abstract: "Print the config of one proxy: the controller's copy, or with --from-proxy the proxy's own.",
        discussion: """
            Without --from-proxy: the config the controller has compiled for the proxy (GET /proxies/NAMESPACE/POD \
            on the controller's HTTP port). With --from-proxy ADDRESS: what the proxy serves (its admin \
            /config_dump, port 15000 on the pod's loopback).
            """
    )

    @Argument(help: "The proxy, as NAMESPACE/POD.")
    var proxy: String

    @OptionGroup var controller: ControllerOptions

    @Option(help: "Read the proxy's admin /config_dump instead, e.g. http://127.0.0.1:15000.")
    var fromProxy: String?

    func run() async throws {
        let parts = self.proxy.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty }) else {
            throw ValidationError("the proxy must be NAMESPACE/POD, got \"\(self.proxy)\"")
        }
        let body =
            if let admin = self.fromProxy {
                try await httpGet(admin, "/config_dump")
            } else {
                try await self.controller.get("/proxies/\(self.proxy)")
            }
        print(String(decoding: body, as: UTF8.self), terminator: body.last == UInt8(ascii: "\n") ? "" : "\n")
    }
}

/// GET `base` + `path`; a non-2xx answer or a connection failure exits 1 with a message on stderr.
func httpGet(_ base: String, _ path: String) async throws -> [UInt8] {
    var trimmed = base
    while trimmed.hasSuffix("/") { trimmed.removeLast() }
    let url = trimmed + path
    do {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(10))
        let body = Array(buffer: try await response.body.collect(upTo: 64 << 20))
        guard (200..<300).contains(response.status.code) else {
            let text = String(decoding: body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            FileHandle.standardError.write(Data("error: GET \(url): \(response.status.code) \(text)\n".utf8))
            throw ExitCode(1)
        }
        return body
    } catch let error as ExitCode {
        throw error
    } catch {
        FileHandle.standardError.write(Data("error: GET \(url): \(error)\n".utf8))
        throw ExitCode(1)
    }
}

/// Columns padded to their widest cell, two spaces apart.
func alignedTable(_ rows: [[String]]) -> String {
    let widths = (0..<(rows.first?.count ?? 0)).map { column in rows.map { $0[column].count }.max() ?? 0 }
    return rows.map { row in
        row.enumerated().map { index, cell in
            index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
        }.joined(separator: "  ")
    }.joined(separator: "\n") + "\n"
}
