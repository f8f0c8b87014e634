import Foundation
import ProxyConfig
import WeftController

/// The end of a demo run, for people and (`--json`) for scripts.
struct DemoSummary: Codable, Sendable {
    struct Service: Codable, Sendable {
        var requests: Int
        /// 2xx answers.
        var successes: Int
        /// Neither 2xx nor denied (after the proxies' retries).
        var failures: Int
        /// 403 with `x-weft-reason: rbac_denied`.
        var denied: Int
        var p50Ms: Double?
        var p99Ms: Double?
        /// Catalog: answers by version.
        var split: [String: Int]?
        /// Payments: retries the frontend's proxy made (its `outbound.retries.granted`).
        var retries: Int?
    }

    struct Proxy: Codable, Sendable {
        var id: String
        /// SYNCED, STALE, NACKED or DISCONNECTED when the traffic stopped.
        var status: String
        var acknowledged: String?
        /// Requests its inbound listener answered.
        var inboundRequests: Int
        /// mTLS connections its inbound listener accepted (handshake done, peer's SVID verified).
        var mtlsConnections: Int
        /// Connections its inbound listener refused (plaintext on a STRICT port, failed handshakes).
        var tlsRefused: Int
        /// Requests its inbound authorization denied.
        var rbacDenied: Int
        var retries: Int
        /// Whether every inbound port of its config is STRICT.
        var strictInbound: Bool
    }

    struct MutualTLS: Codable, Sendable {
        /// mTLS connections accepted by all the proxies' inbound listeners.
        var connections: Int
        /// Connections refused by them.
        var refused: Int
        /// Requests the inbound listeners answered: all over mTLS when `strict`.
        var inboundRequests: Int
        /// Every serving proxy's inbound ports are STRICT: no plaintext reaches an app.
        var strict: Bool
    }

    /// Seconds of traffic.
    var seconds: Double
    /// Requests the load generator sent and got an answer to.
    var requests: Int
    var services: [String: Service]
    /// Catalog answers by version.
    var split: [String: Int]
    var mtls: MutualTLS
    /// Requests answered 403 `rbac_denied`, as the load generator saw them.
    var deniedRequests: Int
    var proxies: [Proxy]

    init(mesh: DemoMesh, totals: [DemoService: DemoTally], outcome: DemoDriver.Outcome) {
        let proxies = outcome.proxies
        self.proxies = mesh.nodes.map { node in
            let counters = node.counters
            let status = proxies.first { $0.id == node.workload.proxyID }
            let inbound = node.store.current?.config.inbound ?? []
            return Proxy(
                id: node.workload.proxyID, status: status?.status.rawValue ?? "UNKNOWN",
                acknowledged: status?.acknowledged, inboundRequests: node.inboundRequests,
                mtlsConnections: counters["inbound.tls.connections"] ?? 0,
                tlsRefused: counters["inbound.tls.refused"] ?? 0, rbacDenied: counters["inbound.rbac.denied"] ?? 0,
                retries: counters["outbound.retries.granted"] ?? 0,
                strictInbound: !inbound.isEmpty && inbound.allSatisfy { $0.tls == .strict })
        }
        let serving = mesh.nodes.filter(\.workload.serves).map(\.workload.proxyID)
        let servingProxies = self.proxies.filter { serving.contains($0.id) }
        self.mtls = MutualTLS(
            connections: self.proxies.map(\.mtlsConnections).reduce(0, +),
            refused: self.proxies.map(\.tlsRefused).reduce(0, +),
            inboundRequests: self.proxies.map(\.inboundRequests).reduce(0, +),
            strict: !servingProxies.isEmpty && servingProxies.allSatisfy(\.strictInbound))
        let frontendRetries = self.proxies.first { $0.id == mesh.node("frontend")?.workload.proxyID }?.retries
        var services: [String: Service] = [:]
        for service in DemoService.allCases {
            let tally = totals[service] ?? DemoTally()
            services[service.rawValue] = Service(
                requests: tally.requests, successes: tally.successes, failures: tally.failures, denied: tally.denied,
                p50Ms: tally.latency.percentileMilliseconds(0.5), p99Ms: tally.latency.percentileMilliseconds(0.99),
                split: service == .catalog ? tally.versions : nil,
                retries: service == .payments ? frontendRetries ?? 0 : nil)
        }
        self.services = services
        self.split = totals[.catalog]?.versions ?? [:]
        self.deniedRequests = totals.values.map(\.denied).reduce(0, +)
        self.seconds = outcome.seconds
        self.requests = outcome.requests
    }

    var json: String {
        ((try? JSONEncoder.sorted.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}") + "\n"
    }

    /// The summary as a short table.
    var text: String {
        var rows = [["SERVICE", "REQUESTS", "SUCCESS", "DENIED", "FAILED", "P50", "P99", ""]]
        for service in DemoService.allCases {
            guard let summary = self.services[service.rawValue] else { continue }
            let judged = summary.requests - summary.denied
            var note = ""
            if let split = summary.split { note = "split " + DemoConsole.split(split) + " \(Self.counts(split))" }
            if let retries = summary.retries { note = "\(retries) retries" }
            rows.append([
                service.rawValue, String(summary.requests),
                DemoConsole.percent(judged > 0 ? Double(summary.successes) * 100 / Double(judged) : nil),
                String(summary.denied), String(summary.failures), DemoConsole.milliseconds(summary.p50Ms),
                DemoConsole.milliseconds(summary.p99Ms), note,
            ])
        }
        let widths = (0..<rows[0].count).map { column in rows.map { $0[column].count }.max() ?? 0 }
        let table = rows.map { row in
            row.enumerated().map { column, cell in
                let pad = String(repeating: " ", count: widths[column] - cell.count)
                if column == row.count - 1 { return cell }
                return column == 0 ? cell + pad : pad + cell
            }.joined(separator: "  ").trimmingSuffixSpaces
        }.joined(separator: "\n")
        return """
            Summary: \(self.requests) requests in \(String(format: "%.1f", self.seconds)) s
            \(table)
            mTLS: \(self.mtls.connections) connections accepted by \(self.mtls.strict ? "STRICT" : "not all STRICT") \
            inbound listeners (\(self.mtls.inboundRequests) requests), \(self.mtls.refused) refused; \
            \(self.deniedRequests) requests denied (403 rbac_denied)

            """
    }

    private static func counts(_ split: [String: Int]) -> String {
        "(" + split.keys.sorted().map { "\($0): \(split[$0] ?? 0)" }.joined(separator: ", ") + ")"
    }
}
