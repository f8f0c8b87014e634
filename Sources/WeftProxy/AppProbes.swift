import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import WeftHTTP

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The app's own HTTP probes, run by the proxy for the kubelet.
///
/// With inbound capture and STRICT mTLS the kubelet's plaintext probes cannot reach the app, so the injector
/// rewrites each HTTP liveness, readiness and startup probe to `GET /app-health/<container>/<livez|readyz|
/// startupz>` on the status port and hands the originals to the proxy in `WEFT_APP_PROBES` (a JSON object:
/// path → `{"httpGet": {"path", "port", "scheme", "host"?, "httpHeaders"?}, "timeoutSeconds"?}`). The status
/// server runs the original from the proxy to the app (127.0.0.1, which capture leaves alone, unless the probe
/// names a host) and answers with the app's status code, so the kubelet judges it as it would have.
public struct AppProbes: Sendable {
    /// One original probe.
    public struct Probe: Sendable, Equatable {
        public var path: String
        public var port: Int
        public var https: Bool
        public var host: String?
        public var headers: [Header]
        public var timeout: Duration

        public struct Header: Sendable, Equatable, Decodable {
            public var name: String
            public var value: String
        }
    }

    /// The probes by status-port path (`/app-health/app/readyz`).
    public let probes: [String: Probe]
    /// Where HTTPS probes get their (unverifying, as the kubelet's) TLS client context.
    private let tls: NIOSSLContext?

    /// The environment variable the injector writes.
    public static let environmentVariable = "WEFT_APP_PROBES"

    /// Parses the injector's JSON. A malformed value is an error naming the probe and field: the proxy refuses
    /// to start on it rather than failing the kubelet's probes one by one.
    public init(json: String) throws(AppProbeError) {
        let entries: [String: Entry]
        do {
            entries = try JSONDecoder().decode([String: Entry].self, from: Data(json.utf8))
        } catch let DecodingError.keyNotFound(key, context) {
            throw AppProbeError(Self.path(context.codingPath + [key]), "is missing")
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            throw AppProbeError(Self.path(context.codingPath), "has the wrong type")
        } catch let DecodingError.dataCorrupted(context) {
            throw AppProbeError(Self.path(context.codingPath), "is not valid JSON (\(context.debugDescription))")
        } catch {
            throw AppProbeError("", "cannot be read: \(error)")
        }
        var probes: [String: Probe] = [:]
        for (path, entry) in entries {
            guard path.hasPrefix("/app-health/") else {
                throw AppProbeError(path, "is not an /app-health/ path")
            }
            let get = entry.httpGet
            guard (1...65_535).contains(get.port) else {
                throw AppProbeError("\(path).httpGet.port", "\(get.port) is not a port")
            }
            let scheme = (get.scheme ?? "HTTP").uppercased()
            guard scheme == "HTTP" || scheme == "HTTPS" else {
                throw AppProbeError("\(path).httpGet.scheme", "\"\(scheme)\" is neither HTTP nor HTTPS")
            }
            let requestPath = get.path ?? "/"
            guard requestPath.hasPrefix("/"), !requestPath.utf8.contains(where: { $0 < 0x21 || $0 == 0x7F }) else {
                throw AppProbeError("\(path).httpGet.path", "\"\(requestPath)\" is not a path")
            }
            for header in get.httpHeaders ?? [] where !Self.isSafe(header) {
                throw AppProbeError("\(path).httpGet.httpHeaders", "header \"\(header.name)\" is not a valid header")
            }
            probes[path] = Probe(
                path: requestPath, port: get.port, https: scheme == "HTTPS", host: get.host,
                headers: get.httpHeaders ?? [], timeout: .seconds(max(1, entry.timeoutSeconds ?? 1)))
        }
        self.probes = probes
        if probes.values.contains(where: \.https) {
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.certificateVerification = .none
            do {
                self.tls = try NIOSSLContext(configuration: configuration)
            } catch {
                throw AppProbeError("", "no TLS client for HTTPS probes: \(error)")
            }
        } else {
            self.tls = nil
        }
    }

    /// No probes (the variable is unset).
    public init() {
        self.probes = [:]
        self.tls = nil
    }

    /// Runs the probe at `path` (nil when there is none) and answers with the app's status code, or 503 with
    /// the reason when the app could not be reached or did not answer in time.
    func run(_ path: String, on eventLoop: any EventLoop) async -> EndpointServer.Response? {
        guard let probe = self.probes[path] else { return nil }
        do {
            let status = try await AppProbeClient.get(probe, tls: self.tls, on: eventLoop)
            return EndpointServer.Response(status, "app probe: HTTP \(status.code)\n")
        } catch {
            return EndpointServer.Response(.serviceUnavailable, "app probe failed: \(error)\n")
        }
    }

    private struct Entry: Decodable {
        struct HTTPGet: Decodable {
            var path: String?
            var port: Int
            var scheme: String?
            var host: String?
            var httpHeaders: [Probe.Header]?
        }

        var httpGet: HTTPGet
        var timeoutSeconds: Int?
    }

    private static func path(_ keys: [any CodingKey]) -> String {
        keys.map(\.stringValue).joined(separator: ".")
    }

    private static func isSafe(_ header: Probe.Header) -> Bool {
        HTTP1Head.isToken(header.name)
            && !header.value.utf8.contains { $0 == 0x0D || $0 == 0x0A || $0 == 0 }
    }
}

/// A `WEFT_APP_PROBES` value the proxy cannot use.
public struct AppProbeError: Error, CustomStringConvertible {
    public var field: String
    public var reason: String

    init(_ field: String, _ reason: String) {
        self.field = field
        self.reason = reason
    }

    public var description: String {
        field.isEmpty
            ? "\(AppProbes.environmentVariable) \(reason)" : "\(AppProbes.environmentVariable): \(field) \(reason)"
    }
}

/// Why a probe did not get an answer.
enum AppProbeFailure: Error, CustomStringConvertible {
    case timedOut(Duration)
    case closed

    var description: String {
        switch self {
        case .timedOut(let timeout): "no answer within \(timeout.components.seconds) s"
        case .closed: "the app closed the connection without answering"
        }
    }
}

/// One probe request: connect, `GET`, read the status line, close. Everything on one event loop.
enum AppProbeClient {
    static func get(
        _ probe: AppProbes.Probe, tls: NIOSSLContext?, on eventLoop: any EventLoop
    ) async throws
        -> HTTPResponseStatus
    {
        try await eventLoop.flatSubmit { Self.start(probe, tls: tls, on: eventLoop) }.get()
    }

    /// On `eventLoop`.
    private static func start(
        _ probe: AppProbes.Probe, tls: NIOSSLContext?, on eventLoop: any EventLoop
    )
        -> EventLoopFuture<HTTPResponseStatus>
    {
        let promise = eventLoop.makePromise(of: HTTPResponseStatus.self)
        let completion = NIOLoopBound(ProbeCompletion(promise), eventLoop: eventLoop)
        let timeout = eventLoop.scheduleTask(in: TimeAmount(probe.timeout)) {
            completion.value.finish(.failure(AppProbeFailure.timedOut(probe.timeout)))
        }
        let host = probe.host ?? "127.0.0.1"
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(TimeAmount(probe.timeout))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if probe.https, let tls {
                        try channel.pipeline.syncOperations.addHandler(
                            NIOSSLClientHandler(context: tls, serverHostname: nil))
                    }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(ProbeResponseHandler(completion.value))
                }
            }
        bootstrap.connect(host: host, port: probe.port).whenComplete { result in
            switch result {
            case .failure(let error):
                completion.value.finish(.failure(error))
            case .success(let channel):
                completion.value.channel = channel
                var headers = HTTPHeaders()
                headers.add(name: "host", value: "\(host):\(probe.port)")
                headers.add(name: "user-agent", value: "kube-probe/1.34 (weft-proxy)")
                headers.add(name: "accept", value: "*/*")
                headers.add(name: "connection", value: "close")
                for header in probe.headers {
                    // The probe's own headers win, as the kubelet's do (Host and User-Agent included).
                    headers.replaceOrAdd(name: header.name, value: header.value)
                }
                let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: probe.path, headers: headers)
                channel.write(HTTPClientRequestPart.head(head), promise: nil)
                channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
            }
        }
        promise.futureResult.whenComplete { _ in timeout.cancel() }
        return promise.futureResult
    }
}

/// Completes a probe once (answer, error, close or timeout, whichever comes first) and closes its connection.
private final class ProbeCompletion {
    private let promise: EventLoopPromise<HTTPResponseStatus>
    private var done = false
    var channel: (any Channel)?

    init(_ promise: EventLoopPromise<HTTPResponseStatus>) {
        self.promise = promise
    }

    func finish(_ result: Result<HTTPResponseStatus, any Error>) {
        if !self.done {
            self.done = true
            self.promise.completeWith(result)
        }
        self.channel?.close(promise: nil)
        self.channel = nil
    }
}

private final class ProbeResponseHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    private let completion: ProbeCompletion

    init(_ completion: ProbeCompletion) {
        self.completion = completion
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = Self.unwrapInboundIn(data) {
            self.completion.finish(.success(head.status))
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.completion.finish(.failure(error))
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.completion.finish(.failure(AppProbeFailure.closed))
        context.fireChannelInactive()
    }
}

@available(*, unavailable)
extension ProbeResponseHandler: Sendable {}

/// Waiting for the proxy's own readiness, for `weft-proxy wait` (the classic sidecar's postStart hook, which holds
/// the app's containers until the proxy has a config).
public enum ProxyReadiness {
    /// Polls `GET /healthz/ready` on 127.0.0.1:`statusPort` every `interval` until it answers 200 (true) or
    /// `timeout` has passed (false). `report` gets each failed attempt's reason.
    public static func wait(
        statusPort: Int, timeout: Duration, interval: Duration = .milliseconds(200),
        report: @Sendable (String) -> Void = { _ in }
    ) async -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        let eventLoop = MultiThreadedEventLoopGroup.singleton.any()
        // A local answer takes microseconds; 5 s per attempt only matters on a starved node (the whole wait may
        // overrun `timeout` by that much).
        let probe = AppProbes.Probe(
            path: "/healthz/ready", port: statusPort, https: false, host: nil, headers: [], timeout: .seconds(5))
        while true {
            do {
                let status = try await AppProbeClient.get(probe, tls: nil, on: eventLoop)
                if status == .ok { return true }
                report("HTTP \(status.code)")
            } catch {
                report("\(error)")
            }
            guard clock.now + interval < deadline, (try? await Task.sleep(for: interval)) != nil else {
                return false
            }
        }
    }
}
