import NIOCore
import NIOHTTP1
import ProxyConfig
import ProxyCore

/// What to do with a request, decided from its head and the current config alone.
enum ProxyDecision {
    /// The proxy answers itself.
    case respond(status: Int, reason: ProxyReason, location: String?)
    /// Forward to `host:port`.
    case forward(ForwardPlan)
}

/// What to do with a CONNECT request.
enum ConnectDecision {
    case respond(status: Int, reason: ProxyReason)
    /// Open a TCP connection to the target and join it to the client's.
    case tunnel(target: UpstreamTarget, lease: EndpointLease, service: String)
}

/// Everything needed to forward one request.
struct ForwardPlan {
    /// The request head to send upstream (path rewritten, headers applied, origin form).
    var head: HTTPRequestHead
    var responseHeaders: [HeaderOperations]
    /// The whole request's deadline (the route's timeout, or a shorter `grpc-timeout`), across tries.
    var timeout: TimeAmount?
    var delay: TimeAmount?
    /// Where the first try goes.
    var target: UpstreamTarget
    /// The first try's hold on its endpoint (outbound only): the handler records the outcome and ends it.
    var lease: EndpointLease? = nil
    /// The cluster's balancer, to pick an endpoint for each retry (outbound only).
    var balancer: ClusterBalancer? = nil
    var retry: CompiledRetryPolicy? = nil
    /// A copy of the request to send to this cluster too (fire and forget).
    var mirror: MirrorPlan? = nil
}

/// A mirrored copy of a request: where it goes and its head (`Host` with `-shadow` appended, as Istio does).
struct MirrorPlan {
    var target: UpstreamTarget
    var head: HTTPRequestHead
    var lease: EndpointLease
}

/// Writes the low `digits` hex digits of `value` (lowercase, zero-padded) at `position`; returns the position
/// after them.
func writeHex(
    _ value: UInt64, digits: Int = 16, into buffer: UnsafeMutableBufferPointer<UInt8>, at position: Int
) -> Int {
    // From the last digit back: one shift by a constant per digit.
    var rest = value
    var index = position + digits
    while index > position {
        index -= 1
        let nibble = UInt8(truncatingIfNeeded: rest & 0xF)
        // 0...9 to "0"..."9", 10...15 to "a"..."f" (39 = "a" - "0" - 10), without a branch.
        buffer[index] = UInt8(ascii: "0") &+ nibble &+ (nibble > 9 ? 39 : 0)
        rest >>= 4
    }
    return position + digits
}

/// A new W3C `traceparent` (version 00, sampled), with random trace and span IDs from `random` (a fast
/// generator seeded from the system's once per event loop: a system call per request would cost more than
/// the rest of the ID). Written in place: one allocation.
func newTraceparent<Random: RandomSource>(using random: inout Random) -> String {
    var traceHigh = random.next()
    let traceLow = random.next()
    let span = random.next() | 1
    if traceHigh == 0 && traceLow == 0 {
        traceHigh = 1
    }
    return String(unsafeUninitializedCapacity: 55) { buffer in
        buffer[0] = UInt8(ascii: "0")
        buffer[1] = UInt8(ascii: "0")
        buffer[2] = UInt8(ascii: "-")
        var position = writeHex(traceHigh, into: buffer, at: 3)
        position = writeHex(traceLow, into: buffer, at: position)
        buffer[position] = UInt8(ascii: "-")
        position = writeHex(span, into: buffer, at: position + 1)
        buffer[position] = UInt8(ascii: "-")
        buffer[position + 1] = UInt8(ascii: "0")
        buffer[position + 2] = UInt8(ascii: "1")
        return position + 3
    }
}

/// The authority and origin-form path of a request: from an absolute-form target (`http://host/path`) when it
/// has one, otherwise from the `Host` header and the target.
func requestTarget(_ head: HTTPRequestHead) -> (authority: String, path: String) {
    let uri = head.uri
    if !uri.hasPrefix("/"), let schemeEnd = uri.range(of: "://") {
        let rest = uri[schemeEnd.upperBound...]
        let pathStart = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
        let authority = String(rest[..<pathStart])
        var path = String(rest[pathStart...])
        if path.isEmpty {
            path = "/"
        } else if path.hasPrefix("?") {
            path = "/" + path
        }
        return (authority, path)
    }
    return (head.headers.first(name: "host") ?? "", uri)
}

/// The forwarded request head: origin-form path, hop-by-hop fields removed (and `x-weft-inbound-port`, which
/// never leaves the proxy), framed by the proxy (`envelope.framing`), `x-forwarded-for`/`-proto` and
/// `x-request-id` by `ForwardedHeaders`' rules, and a `traceparent` when the client sent none. An
/// `Expect: 100-continue` the proxy answers itself is not forwarded.
private func upstreamHead<Random: RandomSource>(
    _ head: HTTPRequestHead, path: String, authority: String, envelope: RequestEnvelope,
    origin: ForwardedHeaders.Origin, random: inout Random
) -> HTTPRequestHead {
    let headers = ForwardedHeaders.requestHeaders(
        head, authority: authority, envelope: envelope, origin: origin, random: &random)
    return HTTPRequestHead(version: .http1_1, method: head.method, uri: path, headers: headers)
}

extension HTTPRequestHead {
    /// A gRPC request (`content-type: application/grpc...`).
    var isGRPC: Bool {
        self.headers.first(name: "content-type")?.hasPrefix("application/grpc") ?? false
    }
}

/// The upstream protocol for a cluster: HTTP/2 for `http2`/`grpc`, HTTP/1.1 for `http1`, and for `detect` or
/// `tcp` the downstream request's own.
func upstreamProtocol(_ declared: AppProtocol, downstream: HTTPVersion) -> UpstreamProtocol {
    switch declared {
    case .http2, .grpc: .http2
    case .http1: .http1
    case .tcp, .detect: downstream.major == 2 ? .http2 : .http1
    }
}

/// A `grpc-timeout` header value (`1S`, `250m`, `100u`, `5n`, `2M`, `1H`) as a duration; nil when malformed.
func parseGRPCTimeout(_ value: String) -> TimeAmount? {
    guard let unit = value.last, value.utf8.count >= 2, value.utf8.count <= 9,
        let amount = Int64(value.dropLast()), amount >= 0
    else {
        return nil
    }
    switch unit {
    case "H": return .hours(amount)
    case "M": return .minutes(amount)
    case "S": return .seconds(amount)
    case "m": return .milliseconds(amount)
    case "u": return .microseconds(amount)
    case "n": return .nanoseconds(amount)
    default: return nil
    }
}

private func percentHit<Random: RandomSource>(_ percentage: Double, _ random: inout Random) -> Bool {
    percentage > 0 && Double(random.next() >> 11) * 0x1p-53 * 100 < percentage
}

extension ProxyState {
    /// Routes an outbound request with the route table: redirect, fault, weighted backend, endpoint (picked by
    /// the cluster's balancer in `runtime`, which must serve this state; `remoteAddress` is the client's, for
    /// source IP hashing). A forward plan holds a lease on the endpoint that the caller must end.
    ///
    /// A captured connection's requests take the routes of the service its original destination names, whatever
    /// their `Host` (which still goes upstream as sent); the route's authority matcher then sees that service's host.
    func decideOutbound(
        _ head: HTTPRequestHead, envelope: RequestEnvelope, runtime: ClusterRuntime, remoteAddress: SocketAddress?,
        captured: CapturedDestination? = nil
    ) -> ProxyDecision {
        let (authority, path) = requestTarget(head)
        var fields: [(name: String, value: String)] = []
        if self.routeTable.matchesHeaders {
            fields.reserveCapacity(head.headers.count)
            for field in head.headers {
                fields.append(field)
            }
        }
        var routed = authority
        if let captured {
            guard let service = self.capturedService(captured) else {
                return .respond(status: 404, reason: .routeNotFound, location: nil)
            }
            routed = "\(service.host):\(service.port)"
        }
        let request = RequestInfo(authority: routed, method: head.method.rawValue, path: path, headers: fields)
        guard let match = self.routeTable.match(request) else {
            return .respond(status: 404, reason: .routeNotFound, location: nil)
        }
        if let redirect = match.route.redirect {
            let host = ParsedHost(authority)
            let scheme = redirect.scheme ?? "http"
            let port = redirect.port.map { ":\($0)" } ?? ""
            let location = "\(scheme)://\(redirect.authority ?? host.host)\(port)\(redirect.path ?? path)"
            return .respond(status: redirect.statusCode, reason: .redirect, location: location)
        }
        guard let forward = match.route.forward else {
            return .respond(status: 404, reason: .routeNotFound, location: nil)
        }
        if let abort = forward.fault?.abort, percentHit(abort.percentage, &runtime.random) {
            return .respond(status: abort.httpStatus, reason: .fault, location: nil)
        }
        let total = forward.totalWeight
        guard total > 0, let backend = forward.pickBackend(roll: runtime.random.nextIndex(below: total)),
            let balancer = runtime.balancer(for: backend.cluster)
        else {
            return .respond(status: 503, reason: .noHealthyUpstream, location: nil)
        }
        balancer.recordRequest()
        guard let lease = balancer.pick(head, remoteAddress: remoteAddress) else {
            return .respond(status: 503, reason: .noHealthyUpstream, location: nil)
        }
        let newPath = forward.rewrite.map { rewrittenPath(path, matched: match.requestMatch, rewrite: $0) } ?? path
        var upstream = upstreamHead(
            head, path: newPath, authority: forward.rewrite?.authority ?? authority, envelope: envelope,
            origin: .outbound, random: &runtime.random)
        upstream.headers.apply(forward.requestHeaders)
        upstream.headers.apply(backend.requestHeaders)
        var delay: TimeAmount?
        if let faultDelay = forward.fault?.delay, percentHit(faultDelay.percentage, &runtime.random) {
            delay = .milliseconds(Int64(faultDelay.delayMs))
        }
        var mirror: MirrorPlan?
        if let mirrorAction = forward.mirror, percentHit(mirrorAction.percentage, &runtime.random),
            let mirrorBalancer = runtime.balancer(for: mirrorAction.cluster),
            let mirrorLease = mirrorBalancer.pick(head, remoteAddress: remoteAddress)
        {
            var mirrorHead = upstream
            let host = mirrorHead.headers.first(name: "host") ?? authority
            mirrorHead.headers.replaceOrAdd(name: "host", value: shadowAuthority(host))
            mirror = MirrorPlan(
                target: mirrorBalancer.target(mirrorLease.endpoint, downstream: head.version), head: mirrorHead,
                lease: mirrorLease)
        }
        return .forward(
            ForwardPlan(
                head: upstream,
                responseHeaders: responseHeaderOperations(forward.responseHeaders, backend.responseHeaders),
                timeout: requestTimeout(route: forward.timeoutMs, head), delay: delay,
                target: balancer.target(lease.endpoint, downstream: head.version), lease: lease, balancer: balancer,
                retry: forward.retry.map(CompiledRetryPolicy.init), mirror: mirror))
    }

    /// Resolves a CONNECT tunnel (outbound): the service named by `authority` (`host:port`), its TCP route's
    /// backends (or, for an HTTP service, its catch-all route's), a weighted backend and an endpoint.
    func decideConnect(
        _ head: HTTPRequestHead, runtime: ClusterRuntime, remoteAddress: SocketAddress?
    ) -> ConnectDecision {
        let request = RequestInfo(authority: head.uri, method: "CONNECT", path: "/", headers: [])
        guard let service = self.routeTable.service(for: request) else {
            return .respond(status: 404, reason: .routeNotFound)
        }
        var chosen: WeightedCluster?
        if let tcp = service.tcp {
            let total = tcp.totalWeight
            chosen = total > 0 ? tcp.pickBackend(roll: runtime.random.nextIndex(below: total)) : nil
        } else if let forward = service.routes.first(where: { $0.matches.isEmpty })?.forward {
            let total = forward.totalWeight
            chosen = total > 0 ? forward.pickBackend(roll: runtime.random.nextIndex(below: total)) : nil
        }
        guard let chosen else {
            return .respond(status: 404, reason: .routeNotFound)
        }
        guard let balancer = runtime.balancer(for: chosen.cluster),
            let lease = balancer.pick(head, remoteAddress: remoteAddress)
        else {
            return .respond(status: 503, reason: .noHealthyUpstream)
        }
        return .tunnel(
            target: balancer.target(lease.endpoint, downstream: head.version), lease: lease,
            service: balancer.cluster.service)
    }

    /// Forwards an inbound request to the app on 127.0.0.1: a captured connection's to the inbound port of its
    /// original destination port; in explicit mode, the port named by `x-weft-inbound-port` when the client may
    /// choose it (see `InboundPortHeader`), otherwise the first one.
    func decideInbound(
        _ head: HTTPRequestHead, envelope: RequestEnvelope, runtime: ClusterRuntime, remoteAddress: SocketAddress?,
        peer: String? = nil, captured: CapturedDestination? = nil, appConnectTimeout: TimeAmount = .seconds(1)
    ) -> ProxyDecision {
        let inbound: InboundPort?
        if let captured {
            inbound = self.config.inbound.first(where: { $0.port == captured.port })
        } else if InboundPortHeader.isHonoured(from: remoteAddress),
            let requested = head.headers.first(name: InboundPortHeader.name)
        {
            let port = Int(requested)
            inbound = self.config.inbound.first(where: { $0.port == port })
        } else {
            inbound = self.config.inbound.first
        }
        guard let inbound else {
            return .respond(status: 404, reason: .inboundPortNotFound, location: nil)
        }
        let (authority, path) = requestTarget(head)
        if !inbound.authorization.policies.isEmpty {
            let request = AuthorizationRequest(
                principal: peer, method: head.method.rawValue, path: path, port: inbound.port)
            if !inbound.authorization.evaluate(request).allowed {
                return .respond(status: 403, reason: .rbacDenied, location: nil)
            }
        }
        let upstream = upstreamHead(
            head, path: path, authority: authority, envelope: envelope,
            origin: .inbound(remote: remoteAddress, meshPeer: peer != nil), random: &runtime.random)
        let target = UpstreamTarget(
            host: "127.0.0.1", port: inbound.appPort,
            protocolKind: upstreamProtocol(inbound.protocol, downstream: head.version),
            cluster: "inbound|\(inbound.port)", limits: inboundLimits, connectTimeout: appConnectTimeout)
        return .forward(
            ForwardPlan(
                head: upstream, responseHeaders: [], timeout: requestTimeout(route: nil, head), delay: nil,
                target: target))
    }
}

/// Inbound connections to the app: no circuit breaking (the caller's proxy does that), kept alive a minute.
private let inboundLimits = ConnectionLimits(
    maxConnections: 0, maxPendingRequests: 0, maxRequestsPerConnection: 0, connectTimeoutMs: 1000,
    idleTimeoutMs: 60_000)

/// The request's deadline: the route's timeout, or the client's `grpc-timeout` when shorter.
private func requestTimeout(route timeoutMs: Int?, _ head: HTTPRequestHead) -> TimeAmount? {
    let route = timeoutMs.flatMap { $0 > 0 ? TimeAmount.milliseconds(Int64($0)) : nil }
    guard let value = head.headers.first(name: "grpc-timeout"), let grpc = parseGRPCTimeout(value) else {
        return route
    }
    return route.map { min($0, grpc) } ?? grpc
}

/// The route's and the backend's response header operations, in that order (no array for none: the usual case).
private func responseHeaderOperations(_ route: HeaderOperations?, _ backend: HeaderOperations?) -> [HeaderOperations] {
    switch (route, backend) {
    case (nil, nil): []
    case (let route?, nil): [route]
    case (nil, let backend?): [backend]
    case (let route?, let backend?): [route, backend]
    }
}

/// `host-shadow` (before any port), the authority of mirrored requests.
private func shadowAuthority(_ authority: String) -> String {
    let host = ParsedHost(authority).host
    return host + "-shadow" + authority.dropFirst(host.utf8.count)
}

/// The host of an authority, without port (and without brackets for IPv6).
private struct ParsedHost {
    var host: String

    init(_ authority: String) {
        if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {
            self.host = String(authority[...close])
        } else if let colon = authority.lastIndex(of: ":"), authority.firstIndex(of: ":") == colon {
            self.host = String(authority[..<colon])
        } else {
            self.host = authority
        }
    }
}
