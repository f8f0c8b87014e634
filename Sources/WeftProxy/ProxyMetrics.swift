import Metrics
import NIOCore
import NIOPosix
import Synchronization

/// Which listener a request came through.
public enum ProxyDirection: String, Sendable, CaseIterable {
    case outbound
    case inbound
}

/// Why the proxy answered a request itself (the `x-weft-reason` header), or `upstream` when the upstream did.
/// The same word is the `reason` label of the request metrics and the access log's `reason`.
public enum ProxyReason: String, Sendable, CaseIterable {
    case upstream
    case routeNotFound = "route_not_found"
    case redirect
    case fault
    case timeout
    case noHealthyUpstream = "no_healthy_upstream"
    case upstreamConnectFailure = "upstream_connect_failure"
    case upstreamReset = "upstream_reset"
    /// A circuit-breaking limit (connections, pending requests) was reached.
    case overflow
    case noConfig = "no_config"
    case inboundPortNotFound = "inbound_port_not_found"
    /// CONNECT (and anything else the proxy cannot forward).
    case unsupportedMethod = "unsupported_method"
    /// Request headers over the count or size limit (431).
    case headerLimits = "header_limits"
    /// The request head did not arrive within the header timeout (408).
    case headerTimeout = "header_timeout"
    /// HTTP that does not parse (400).
    case malformedRequest = "malformed_request"
    /// The client went away before the response (recorded as 499, never sent).
    case downstreamReset = "downstream_reset"
    /// The inbound authorization policy denied the request (403).
    case rbacDenied = "rbac_denied"
    /// A process-wide cap was reached (503): buffered request bytes (`ProxyLimits.maxBufferedBytes`).
    case overload
    /// The request body made no progress for `ProxyLimits.bodyTimeout` (408).
    case bodyTimeout = "body_timeout"
}

/// Which process-wide cap refused work (`weft_proxy_overload_total{limit}`).
enum OverloadLimit: String, Sendable {
    /// `ProxyLimits.maxDownstreamConnections`: a new connection was refused.
    case connections
    /// `ProxyLimits.maxBufferedBytes`: a request was answered 503, or its retry buffer dropped.
    case bufferedBytes = "buffered_bytes"
}

extension ProxyReason {
    private static let ordered = ProxyReason.allCases

    /// The position in `allCases` (metric tables are indexed by it), without building `allCases` per request.
    fileprivate var index: Int { Self.ordered.firstIndex(of: self) ?? 0 }
}

/// The proxy's metrics (and, from the start, those of `ProxyLifecycleMetrics`).
///
/// - `weft_proxy_requests_total{direction, destination_service, response_class, reason}`
/// - `weft_proxy_request_duration_seconds{direction, destination_service}` (histogram)
/// - `weft_proxy_request_bytes_total` / `weft_proxy_response_bytes_total{direction, destination_service}`
/// - `weft_proxy_retries_total{direction, result}` (`granted`, `budget_exhausted`)
/// - `weft_proxy_tcp_connections_total{direction}`, `weft_proxy_tcp_bytes_total{direction, flow}`
///   (`sent` to the upstream, `received` from the client), `weft_proxy_tcp_rejected_total{direction}`
/// - `weft_proxy_tls_refused_total{direction, reason}`, `weft_proxy_rbac_denied_total{direction, protocol}`
/// - `weft_proxy_tls_connections_total{direction}`: mTLS connections accepted (handshake done, peer verified)
/// - `weft_proxy_overload_total{direction, limit}`: work a process-wide cap refused (`connections`,
///   `buffered_bytes`)
/// - `weft_proxy_http1_dormant_total{direction}`: idle HTTP/1.1 connections that dropped their HTTP handlers
///
/// The swift-metrics handles of each label set are created once per thread and cached there (an event loop
/// is a thread), so recording a request takes no lock. `/stats` reads plain atomics.
public final class ProxyMetrics: Sendable {
    private static let classes = ["1xx", "2xx", "3xx", "4xx", "5xx"]
    private let stats: [StatCell]
    private let retries: [StatCell]
    private let tcp: [StatCell]
    private let handles = ThreadSpecificVariable<HandleCache>()
    /// Build, config, listener and connection series (see `ProxyLifecycleMetrics`).
    let lifecycle = ProxyLifecycleMetrics()

    public init() {
        let count = ProxyDirection.allCases.count * Self.classes.count * ProxyReason.allCases.count
        self.stats = (0..<count).map { _ in StatCell() }
        self.retries = (0..<4).map { _ in StatCell() }
        self.tcp = (0..<20).map { _ in StatCell() }
    }

    private static func index(_ direction: ProxyDirection, status: Int, reason: ProxyReason) -> Int {
        let directionIndex = direction == .outbound ? 0 : 1
        let classIndex = Self.classIndex(status)
        let reasonIndex = reason.index
        return (directionIndex * Self.classes.count + classIndex) * ProxyReason.allCases.count + reasonIndex
    }

    private static func classIndex(_ status: Int) -> Int {
        min(max(status / 100, 1), 5) - 1
    }

    private var cache: HandleCache {
        if let cache = self.handles.currentValue {
            return cache
        }
        let cache = HandleCache()
        self.handles.currentValue = cache
        return cache
    }

    /// Records one finished request (or one tunnel's `101`).
    func record(
        _ direction: ProxyDirection, service: String = "unknown", status: Int, reason: ProxyReason,
        started: NIODeadline, requestBytes: Int, responseBytes: Int
    ) {
        self.stats[Self.index(direction, status: status, reason: reason)].value.add(1, ordering: .relaxed)
        let handles = self.cache.handles(direction, service: service)
        handles.requests(classIndex: Self.classIndex(status), reason: reason).increment()
        handles.duration.recordNanoseconds((NIODeadline.now() - started).nanoseconds)
        if requestBytes > 0 {
            handles.requestBytes.increment(by: Int64(requestBytes))
        }
        if responseBytes > 0 {
            handles.responseBytes.increment(by: Int64(responseBytes))
        }
    }

    /// A retry was granted, or refused by the retry budget.
    func recordRetry(_ direction: ProxyDirection, granted: Bool) {
        let index = (direction == .outbound ? 0 : 2) + (granted ? 0 : 1)
        self.retries[index].value.add(1, ordering: .relaxed)
        self.cache.counter(
            "weft_proxy_retries_total",
            [("direction", direction.rawValue), ("result", granted ? "granted" : "budget_exhausted")]
        ).increment()
    }

    /// A circuit-breaking limit answered 503 (also counted as a request with reason `overflow`).
    func recordOverflow(_ direction: ProxyDirection) {
        self.cache.counter("weft_proxy_overflows_total", [("direction", direction.rawValue)]).increment()
    }

    /// A process-wide cap refused a connection, a request, or a retry buffer.
    func recordOverload(_ direction: ProxyDirection, limit: OverloadLimit) {
        let offset = direction == .outbound ? 0 : 1
        self.tcp[(limit == .connections ? 14 : 16) + offset].value.add(1, ordering: .relaxed)
        self.cache.counter(
            "weft_proxy_overload_total", [("direction", direction.rawValue), ("limit", limit.rawValue)]
        ).increment()
    }

    /// An idle HTTP/1.1 keep-alive connection dropped its HTTP handlers (`ProxyLimits.dormantAfter`).
    func recordDormant(_ direction: ProxyDirection) {
        self.tcp[direction == .outbound ? 18 : 19].value.add(1, ordering: .relaxed)
        self.cache.counter("weft_proxy_http1_dormant_total", [("direction", direction.rawValue)]).increment()
    }

    /// A TCP connection was proxied as opaque bytes.
    func recordTCPConnection(_ direction: ProxyDirection) {
        self.tcp[direction == .outbound ? 0 : 1].value.add(1, ordering: .relaxed)
        self.cache.counter("weft_proxy_tcp_connections_total", [("direction", direction.rawValue)]).increment()
    }

    /// A connection was refused before any byte was proxied (TLS on the outbound port).
    func recordTCPRejected(_ direction: ProxyDirection) {
        self.tcp[direction == .outbound ? 6 : 7].value.add(1, ordering: .relaxed)
        self.cache.counter("weft_proxy_tcp_rejected_total", [("direction", direction.rawValue)]).increment()
    }

    /// An inbound connection refused by its port's mTLS mode before any byte reached the app: `plaintext` on a
    /// STRICT port, `no_certificate` when TLS arrives and the proxy has no certificate, `handshake` when the TLS
    /// handshake or the peer's certificate failed.
    func recordTLSRefused(_ direction: ProxyDirection, reason: String) {
        self.tcp[direction == .outbound ? 8 : 9].value.add(1, ordering: .relaxed)
        self.cache.counter(
            "weft_proxy_tls_refused_total", [("direction", direction.rawValue), ("reason", reason)]
        ).increment()
    }

    /// An mTLS connection was accepted: the handshake completed and the peer's SVID verified.
    func recordTLSAccepted(_ direction: ProxyDirection) {
        self.tcp[direction == .outbound ? 12 : 13].value.add(1, ordering: .relaxed)
        self.cache.counter("weft_proxy_tls_connections_total", [("direction", direction.rawValue)]).increment()
    }

    /// The inbound authorization policy denied a request (`http`, also counted as a request with reason
    /// `rbac_denied`) or a TCP connection (`tcp`, closed).
    func recordRBACDenied(_ direction: ProxyDirection, protocol: String) {
        self.tcp[direction == .outbound ? 10 : 11].value.add(1, ordering: .relaxed)
        self.cache.counter(
            "weft_proxy_rbac_denied_total", [("direction", direction.rawValue), ("protocol", `protocol`)]
        ).increment()
    }

    /// Bytes through a tunnel (TCP, CONNECT, WebSocket): `received` from the client, `sent` from the upstream
    /// side towards the client.
    func recordTunnelBytes(_ direction: ProxyDirection, received: Int = 0, sent: Int = 0) {
        let base = direction == .outbound ? 2 : 4
        if received > 0 {
            self.tcp[base].value.add(received, ordering: .relaxed)
            self.cache.counter(
                "weft_proxy_tcp_bytes_total", [("direction", direction.rawValue), ("flow", "received")]
            ).increment(by: Int64(received))
        }
        if sent > 0 {
            self.tcp[base + 1].value.add(sent, ordering: .relaxed)
            self.cache.counter(
                "weft_proxy_tcp_bytes_total", [("direction", direction.rawValue), ("flow", "sent")]
            ).increment(by: Int64(sent))
        }
    }

    /// Plain counters, one line per non-zero value: `outbound.2xx.upstream: 12`, `outbound.retries.granted: 3`,
    /// `inbound.tcp.connections: 1`.
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
            let offset = direction == .outbound ? 0 : 1
            let named: [(String, StatCell)] = [
                ("retries.granted", self.retries[offset * 2]),
                ("retries.budget_exhausted", self.retries[offset * 2 + 1]),
                ("tcp.connections", self.tcp[offset]),
                ("tcp.bytes_received", self.tcp[2 + offset * 2]),
                ("tcp.bytes_sent", self.tcp[3 + offset * 2]),
                ("tcp.rejected", self.tcp[6 + offset]),
                ("tls.connections", self.tcp[12 + offset]),
                ("tls.refused", self.tcp[8 + offset]),
                ("rbac.denied", self.tcp[10 + offset]),
                ("overload.connections", self.tcp[14 + offset]),
                ("overload.buffered_bytes", self.tcp[16 + offset]),
                ("http1.dormant", self.tcp[18 + offset]),
            ]
            for (name, cell) in named {
                let value = cell.value.load(ordering: .relaxed)
                if value > 0 {
                    lines.append("\(direction.rawValue).\(name): \(value)")
                }
            }
        }
        return lines.joined(separator: "\n") + (lines.isEmpty ? "" : "\n")
    }

    /// The value of a `/stats` request counter (tests).
    public func requests(_ direction: ProxyDirection, status: Int, reason: ProxyReason) -> Int {
        self.stats[Self.index(direction, status: status, reason: reason)].value.load(ordering: .relaxed)
    }
}

/// One `/stats` counter (an atomic needs a stable address, so each lives in its own object).
private final class StatCell: Sendable {
    let value = Atomic<Int>(0)
}

/// The swift-metrics handles one thread has used, by label set. `@unchecked Sendable` only because
/// `ThreadSpecificVariable` wants a Sendable value: each instance is reached from its own thread only.
private final class HandleCache: @unchecked Sendable {
    private struct ServiceKey: Hashable {
        var direction: ProxyDirection
        var service: String
    }

    private struct CounterKey: Hashable {
        var label: String
        var dimensions: [String]
    }

    private var services: [ServiceKey: ServiceHandles] = [:]
    private var counters: [CounterKey: Counter] = [:]

    func handles(_ direction: ProxyDirection, service: String) -> ServiceHandles {
        let key = ServiceKey(direction: direction, service: service)
        if let handles = self.services[key] {
            return handles
        }
        let handles = ServiceHandles(direction: direction, service: service)
        self.services[key] = handles
        return handles
    }

    func counter(_ label: String, _ dimensions: [(String, String)]) -> Counter {
        let key = CounterKey(label: label, dimensions: dimensions.flatMap { [$0.0, $0.1] })
        if let counter = self.counters[key] {
            return counter
        }
        let counter = Counter(label: label, dimensions: dimensions)
        self.counters[key] = counter
        return counter
    }
}

/// The handles of one direction and destination service.
private final class ServiceHandles {
    let direction: ProxyDirection
    let service: String
    let duration: Metrics.Timer
    let requestBytes: Counter
    let responseBytes: Counter
    private var requestCounters: [Int: Counter] = [:]

    init(direction: ProxyDirection, service: String) {
        self.direction = direction
        self.service = service
        let dimensions = [("direction", direction.rawValue), ("destination_service", service)]
        self.duration = Metrics.Timer(label: "weft_proxy_request_duration_seconds", dimensions: dimensions)
        self.requestBytes = Counter(label: "weft_proxy_request_bytes_total", dimensions: dimensions)
        self.responseBytes = Counter(label: "weft_proxy_response_bytes_total", dimensions: dimensions)
    }

    func requests(classIndex: Int, reason: ProxyReason) -> Counter {
        let reasonIndex = reason.index
        let key = classIndex * 64 + reasonIndex
        if let counter = self.requestCounters[key] {
            return counter
        }
        let counter = Counter(
            label: "weft_proxy_requests_total",
            dimensions: [
                ("direction", self.direction.rawValue), ("destination_service", self.service),
                ("response_class", "\(classIndex + 1)xx"), ("reason", reason.rawValue),
            ])
        self.requestCounters[key] = counter
        return counter
    }
}
