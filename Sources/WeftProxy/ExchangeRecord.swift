import NIOCore
import NIOHTTP1

/// What one request did, gathered while it is served and reported once it is over: to the metrics, the access
/// log and its span.
struct ExchangeRecord {
    var started: NIODeadline
    /// The status the client got (0: none yet).
    var status = 0
    var reason = ProxyReason.upstream
    var requestBytes = 0
    var responseBytes = 0
    var tries = 0
    /// The destination service (metrics label): the cluster's service outbound, `inbound` inbound.
    var service: String

    init(direction: ProxyDirection, started: NIODeadline) {
        self.started = started
        self.service = direction == .inbound ? "inbound" : "unknown"
    }

    /// Reports the request. `forwarded` is the head sent upstream (where a new trace's `traceparent` is), `target`
    /// the last try's upstream.
    func report(
        to shared: ProxyListenerContext, head: HTTPRequestHead?, forwarded: HTTPRequestHead?, target: UpstreamTarget?,
        span: ProxySpan?, isHTTP2: Bool, now: NIODeadline = .now()
    ) {
        if let span, let head {
            span.end(
                method: head.method.rawValue, path: head.uri, status: self.status, reason: self.reason,
                upstream: target.map { "\($0.host):\($0.port)" }, cluster: target?.cluster, tries: self.tries)
        }
        shared.metrics.record(
            shared.direction, service: self.service, status: self.status, reason: self.reason, started: self.started,
            requestBytes: self.requestBytes, responseBytes: self.responseBytes)
        if let log = shared.accessLog, let head {
            log.log(
                AccessLogEntry(
                    direction: shared.direction, method: head.method.rawValue,
                    authority: requestTarget(head).authority,
                    path: head.uri,
                    protocolVersion: isHTTP2 ? "HTTP/2" : "HTTP/\(head.version.major).\(head.version.minor)",
                    status: self.status, reason: self.reason.rawValue,
                    upstream: target.map { "\($0.host):\($0.port)" }, cluster: target?.cluster,
                    tries: self.tries, requestBytes: self.requestBytes, responseBytes: self.responseBytes,
                    durationMicros: (now - self.started).nanoseconds / 1000,
                    traceparent: head.headers.first(name: "traceparent")
                        ?? forwarded?.headers.first(name: "traceparent")))
        }
    }
}
