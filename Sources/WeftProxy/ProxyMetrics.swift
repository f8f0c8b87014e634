import Metrics
import NIOCore
import Synchronization

/// Which listener a request came through.
public enum ProxyDirection: String, Sendable, CaseIterable {
    case outbound
    case inbound
}

/// Why the proxy answered a request itself (the `x-weft-reason` header), or `upstream` when the upstream did.
public enum ProxyReason: String, Sendable, CaseIterable {
    case upstream
    case routeNotFound = "route_not_found"
    case redirect
    case fault
    case timeout
    case noHealthyUpstream = "no_healthy_upstream"
    case upstreamConnectFailure = "upstream_connect_failure"
    case upstreamReset = "upstream_reset"
    case noConfig = "no_config"
    case inboundPortNotFound = "inbound_port_not_found"
    /// CONNECT (and anything else this HTTP/1.1 slice cannot proxy).
    case unsupportedMethod = "unsupported_method"
}

/// Request metrics. Every swift-metrics handle is created once, at init, for every label set (the labels are
/// closed enums), and kept in immutable arrays: recording a request takes no lock and creates nothing.
/// The `/stats` counters are atomics.
public final class ProxyMetrics: Sendable {
    private static let classes = ["1xx", "2xx", "3xx", "4xx", "5xx"]
    private let counters: [Counter]
    private let durations: [Metrics.Timer]
    private let stats: [StatCell]

    public init() {
        var counters: [Counter] = []
        for direction in ProxyDirection.allCases {
            for responseClass in Self.classes {
                for reason in ProxyReason.allCases {
                    counters.append(
                        Counter(
                            label: "weft_proxy_requests_total",
                            dimensions: [
                                ("direction", direction.rawValue), ("response_class", responseClass),
                                ("reason", reason.rawValue),
                            ]))
                }
            }
        }
        self.counters = counters
        self.durations = ProxyDirection.allCases.map {
            Metrics.Timer(label: "weft_proxy_request_duration_seconds", dimensions: [("direction", $0.rawValue)])
        }
        self.stats = (0..<counters.count).map { _ in StatCell() }
    }

    private static func index(_ direction: ProxyDirection, status: Int, reason: ProxyReason) -> Int {
        let directionIndex = direction == .outbound ? 0 : 1
        let classIndex = min(max(status / 100, 1), 5) - 1
        let reasonIndex = ProxyReason.allCases.firstIndex(of: reason) ?? 0
        return (directionIndex * Self.classes.count + classIndex) * ProxyReason.allCases.count + reasonIndex
    }

    /// Records one finished request.
    func record(_ direction: ProxyDirection, status: Int, reason: ProxyReason, started: NIODeadline) {
        let index = Self.index(direction, status: status, reason: reason)
        self.counters[index].increment()
        self.stats[index].value.add(1, ordering: .relaxed)
        let elapsed = NIODeadline.now() - started
        self.durations[direction == .outbound ? 0 : 1].recordNanoseconds(elapsed.nanoseconds)
    }

    /// Plain counters, one line per non-zero label set: `outbound.2xx.upstream: 12`.
    public func renderStats() -> String {
        var lines: [String] = []
        for direction in ProxyDirection.allCases {
            for (classIndex, responseClass) in Self.classes.enumerated() {
                for reason in ProxyReason.allCases {
                    let value = self.stats[
                        Self.index(direction, status: (classIndex + 1) * 100, reason: reason)
                    ].value.load(ordering: .relaxed)
                    if value > 0 {
                        lines.append("\(direction.rawValue).\(responseClass).\(reason.rawValue): \(value)")
                    }
                }
            }
        }
        return lines.joined(separator: "\n") + (lines.isEmpty ? "" : "\n")
    }
}

/// One `/stats` counter (an atomic needs a stable address, so each lives in its own object).
private final class StatCell: Sendable {
    let value = Atomic<Int>(0)
}
