import NIOCore
import NIOHTTP1

/// What every connection of a listener shares.
struct ProxyListenerContext: Sendable {
    let direction: ProxyDirection
    let store: ProxyStateStore
    let metrics: ProxyMetrics
    /// Per event loop balancer and outlier detection state.
    let runtimes: ClusterRuntimes
    /// Per event loop upstream connections.
    let pools: UpstreamPools
    let limits: ProxyLimits
    let accessLog: AccessLog?
    let tracer: ProxyTracer?
    /// The proxy's certificate and peer verification (nil: no mTLS at all).
    let meshTLS: MeshTLS?
    /// The process-wide connection and buffer caps (shared by both listeners).
    let overload: OverloadManager
    /// The connection's original destination when capture redirected it (per connection; nil: explicit mode).
    var captured: CapturedDestination? = nil
}

/// Bounds on what a downstream may send, and the proxy's own buffers.
public struct ProxyLimits: Sendable, Hashable {
    /// Request header fields at most (more: 431 `header_limits`).
    public var maxHeaderCount: Int
    /// Bytes of request header names and values at most (more: 431 `header_limits`).
    public var maxHeaderBytes: Int
    /// Time a client has from its first byte to the end of a request head (HTTP/1.1): 408 `header_timeout`.
    public var headerTimeout: TimeAmount
    /// How long a new connection on a `detect` port may stay silent before it is treated as opaque TCP
    /// (server-first protocols such as MySQL), and how long the outbound port waits for a first byte.
    public var detectTimeout: TimeAmount
    /// Request bytes kept for retries; a larger body is streamed and not retried.
    public var retryBufferBytes: Int
    /// Request bytes buffered for a mirror that is not connected yet; past this the mirror is dropped.
    public var mirrorBufferBytes: Int
    /// How long a keep-alive connection (HTTP/1.1) may sit with no request in flight before the proxy closes it.
    public var idleTimeout: TimeAmount
    /// The protocols an HTTP/1.1 `Upgrade` may switch to (lowercase tokens); any other `Upgrade` is removed and
    /// the request forwarded as a plain one.
    public var upgradeProtocols: [String]
    /// Open downstream connections per proxy process, both listeners together; past it a new connection is
    /// refused (outbound: answered `503` `overload` and closed; inbound: closed).
    public var maxDownstreamConnections: Int
    /// Request bytes the process holds in memory (retry buffers, bodies waiting for an upstream connection); a
    /// retry buffer past it is dropped (the request streams, not retried), a waiting body past it gets `503`
    /// `overload`.
    public var maxBufferedBytes: Int
    /// How long a request body may make no progress (the client sends nothing while the proxy is reading) before
    /// the request is aborted: `408` `body_timeout` when no response began, otherwise the connection (HTTP/2:
    /// the stream) is reset.
    public var bodyTimeout: TimeAmount
    /// How long an HTTP/1.1 keep-alive connection stays idle, between two requests, before it drops its HTTP
    /// handlers (about 3 KiB; they come back with its next byte). Zero: never.
    public var dormantAfter: TimeAmount
    /// How long a connection to the app (inbound, on localhost) may take to open before the request is answered
    /// `503` `upstream_connect_failure`.
    public var appConnectTimeout: TimeAmount

    public init(
        maxHeaderCount: Int = 100, maxHeaderBytes: Int = 64 << 10, headerTimeout: TimeAmount = .seconds(10),
        detectTimeout: TimeAmount = .milliseconds(200), retryBufferBytes: Int = 64 << 10,
        mirrorBufferBytes: Int = 64 << 10, idleTimeout: TimeAmount = .seconds(300),
        upgradeProtocols: [String] = ["websocket"], maxDownstreamConnections: Int = 10_000,
        maxBufferedBytes: Int = 64 << 20, bodyTimeout: TimeAmount = .seconds(30),
        dormantAfter: TimeAmount = .seconds(1), appConnectTimeout: TimeAmount = .seconds(1)
    ) {
        self.maxHeaderCount = maxHeaderCount
        self.maxHeaderBytes = maxHeaderBytes
        self.headerTimeout = headerTimeout
        self.detectTimeout = detectTimeout
        self.retryBufferBytes = retryBufferBytes
        self.mirrorBufferBytes = mirrorBufferBytes
        self.idleTimeout = idleTimeout
        self.upgradeProtocols = upgradeProtocols.map { $0.lowercased() }
        self.maxDownstreamConnections = maxDownstreamConnections
        self.maxBufferedBytes = maxBufferedBytes
        self.bodyTimeout = bodyTimeout
        self.dormantAfter = dormantAfter
        self.appConnectTimeout = appConnectTimeout
    }
}

extension ProxyLimits {
    /// The HTTP/1.1 decoder's limits: the proxy's own, so that an oversized head fails while it is parsed (431),
    /// not after it was buffered whole. Used for downstream request heads and upstream response heads.
    var decoderLimits: NIOHTTPDecoderLimitConfiguration {
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderFieldCount = self.maxHeaderCount
        limits.maxHeaderListSize = self.maxHeaderBytes
        limits.maxHeaderFieldSize = self.maxHeaderBytes
        return limits
    }

    /// Whether `headers` is within the count and size limits (HTTP/2 heads; HTTP/1.1 ones are bounded while parsed).
    func admits(_ headers: HTTPHeaders) -> Bool {
        guard headers.count <= self.maxHeaderCount else {
            return false
        }
        var bytes = 0
        for field in headers {
            bytes += field.name.utf8.count + field.value.utf8.count
        }
        return bytes <= self.maxHeaderBytes
    }
}
