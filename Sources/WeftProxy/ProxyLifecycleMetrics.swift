import Metrics
import ProxyConfig
import Synchronization

/// The series a proxy exports from its start, before any request, so that dashboards and alerts see them at once:
///
/// - `weft_proxy_build_info{version}` 1;
/// - `weft_proxy_config_info{version}` 1 for the config being served (the previous version's series is removed),
///   `weft_proxy_config_load_timestamp_seconds` (Unix time of the last successful load) and
///   `weft_proxy_config_loads_total{result}` (`success`, `rejected`);
/// - `weft_proxy_listeners{direction}` (1 while the listener is bound), `weft_proxy_downstream_connections{direction}`
///   (open client connections) and `weft_proxy_downstream_connections_total{direction}`;
/// - `weft_proxy_requests_total` at 0 for every destination of the loaded config (`2xx`, `4xx` and `5xx` with
///   reason `upstream`; outbound: each cluster's service, inbound: `inbound`).
///
/// Nothing here is on the request path: connections and config loads only.
final class ProxyLifecycleMetrics: Sendable {
    /// The version `weft_proxy_build_info` reports.
    static let buildVersion = "0.1.0"

    private let listeners: [Gauge]
    private let open: [Meter]
    private let accepted: [Counter]
    private let loadTime = Gauge(label: "weft_proxy_config_load_timestamp_seconds")
    private let loadsSucceeded = Counter(label: "weft_proxy_config_loads_total", dimensions: [("result", "success")])
    private let loadsRejected = Counter(label: "weft_proxy_config_loads_total", dimensions: [("result", "rejected")])
    private let configInfo = Mutex<(version: String, gauge: Gauge)?>(nil)

    init() {
        Gauge(label: "weft_proxy_build_info", dimensions: [("version", Self.buildVersion)]).record(1)
        let directions = [ProxyDirection.outbound, .inbound]
        self.listeners = directions.map {
            Gauge(label: "weft_proxy_listeners", dimensions: [("direction", $0.rawValue)])
        }
        self.open = directions.map {
            Meter(label: "weft_proxy_downstream_connections", dimensions: [("direction", $0.rawValue)])
        }
        self.accepted = directions.map {
            Counter(label: "weft_proxy_downstream_connections_total", dimensions: [("direction", $0.rawValue)])
        }
        for gauge in self.listeners {
            gauge.record(0)
        }
        for meter in self.open {
            meter.set(0)
        }
    }

    private static func index(_ direction: ProxyDirection) -> Int { direction == .outbound ? 0 : 1 }

    func listener(_ direction: ProxyDirection, bound: Bool) {
        self.listeners[Self.index(direction)].record(bound ? 1 : 0)
    }

    func connectionOpened(_ direction: ProxyDirection) {
        self.open[Self.index(direction)].increment()
        self.accepted[Self.index(direction)].increment()
    }

    func connectionClosed(_ direction: ProxyDirection) {
        self.open[Self.index(direction)].decrement()
    }

    /// A config was loaded at `time` (Unix seconds): its version, load time and zero-valued request series.
    func configLoaded(_ config: ProxyConfig, at time: Double) {
        self.loadsSucceeded.increment()
        self.loadTime.record(time)
        let info = Gauge(label: "weft_proxy_config_info", dimensions: [("version", config.version)])
        let previous = self.configInfo.withLock { current -> Gauge? in
            defer { current = (config.version, info) }
            return current.flatMap { $0.version == config.version ? nil : $0.gauge }
        }
        // (The same version reloaded is the same series: only another version's goes.)
        previous?.destroy()
        info.record(1)
        var destinations = Set(config.clusters.map(\.service)).sorted().map { (ProxyDirection.outbound, $0) }
        if !config.inbound.isEmpty {
            destinations.append((.inbound, "inbound"))
        }
        for (direction, service) in destinations {
            for responseClass in ["2xx", "4xx", "5xx"] {
                // Same label names, in the same order, as the counters `ProxyMetrics.record` increments.
                _ = Counter(
                    label: "weft_proxy_requests_total",
                    dimensions: [
                        ("direction", direction.rawValue), ("destination_service", service),
                        ("response_class", responseClass), ("reason", ProxyReason.upstream.rawValue),
                    ])
            }
        }
    }

    func configRejected() {
        self.loadsRejected.increment()
    }
}
