import NIOHTTP1
import Tracing

/// Spans for proxied requests, made by any swift-distributed-tracing `Tracer` (weft-proxy wraps swift-otel's
/// OTLP exporter, tests an in-memory one). Off unless configured: without it, the request path only
/// propagates `traceparent` and creates it when absent.
///
/// Each request gets one span (`server` kind inbound, `client` outbound), a child of the incoming
/// `traceparent`; the forwarded request carries the span's own `traceparent`, so the upstream's spans hang
/// under the proxy's.
public struct ProxyTracer: Sendable {
    private let start: @Sendable (_ name: String, _ headers: HTTPHeaders, _ kind: SpanKind) -> ProxySpan

    public init<T: Tracer>(_ tracer: T) where T: Sendable {
        self.start = { name, headers, kind in
            var context = InstrumentationContext.topLevel
            tracer.extract(headers, into: &context, using: HTTPHeadersExtractor())
            let span = tracer.startSpan(name, context: context, ofKind: kind)
            return ProxySpan(
                span: span,
                inject: { headers in
                    headers.remove(name: "traceparent")
                    headers.remove(name: "tracestate")
                    tracer.inject(span.context, into: &headers, using: HTTPHeadersInjector())
                })
        }
    }

    func startSpan(_ name: String, headers: HTTPHeaders, kind: SpanKind) -> ProxySpan {
        self.start(name, headers, kind)
    }
}

/// One request's span.
final class ProxySpan {
    private let span: any Span
    private let injectContext: (inout HTTPHeaders) -> Void

    init(span: any Span, inject: @escaping (inout HTTPHeaders) -> Void) {
        self.span = span
        self.injectContext = inject
    }

    /// Replaces the trace context headers of a forwarded request with this span's.
    func inject(into headers: inout HTTPHeaders) {
        self.injectContext(&headers)
    }

    /// Records the request's outcome and ends the span.
    func end(
        method: String, path: String, status: Int, reason: ProxyReason, upstream: String?, cluster: String?,
        tries: Int
    ) {
        var attributes = SpanAttributes()
        attributes["http.request.method"] = method
        attributes["url.path"] = path
        attributes["http.response.status_code"] = status
        attributes["weft.reason"] = reason.rawValue
        attributes["weft.tries"] = tries
        if let upstream {
            attributes["server.address"] = upstream
        }
        if let cluster {
            attributes["weft.cluster"] = cluster
        }
        self.span.attributes = attributes
        if status >= 500 || (reason != .upstream && reason != .redirect && status >= 400) {
            self.span.setStatus(SpanStatus(code: .error, message: reason.rawValue))
        }
        self.span.end()
    }
}

@available(*, unavailable)
extension ProxySpan: Sendable {}

private struct HTTPHeadersExtractor: Extractor {
    func extract(key: String, from carrier: HTTPHeaders) -> String? {
        carrier.first(name: key)
    }
}

private struct HTTPHeadersInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout HTTPHeaders) {
        carrier.replaceOrAdd(name: key, value: value)
    }
}
