import ArgumentParser
import Logging
import Metrics
import NIOCore
import NIOPosix
import OTel
import Prometheus
import ServiceLifecycle
import WeftIdentity
import WeftProxy

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

struct WeftProxyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract:
            "The Weft sidecar proxy: outbound and inbound listeners (HTTP/1.1, h2c, gRPC, TCP) and an admin port.",
        discussion: """
            Loads a ProxyConfig JSON file (as `weftctl compile` prints it) and reloads it when it changes; a \
            file that does not decode or compile is rejected and the previous config keeps serving.

            Temporary (until transparent capture and TLS): the inbound listener forwards to the app port of the \
            inbound port named by the `x-weft-inbound-port` request header, or of the first inbound port.
            """
    )

    @Option(help: "The ProxyConfig JSON file (alone, or as the config served until the controller's first push).")
    var config: String?

    @Option(
        help: """
            The controller's push stream, HOST:PORT (port 15012): the proxy receives its config from there,             keeps serving the last one while the controller is away, and reconnects.
            """)
    var controller: String?

    @Option(help: "The workload this proxy serves, NAMESPACE/POD. Default: $POD_NAMESPACE/$POD_NAME.")
    var proxyID: String?

    @Option(help: "Outbound listener port (the app's requests to mesh services).")
    var outboundPort: Int = 15001

    @Option(help: "Inbound listener port (requests to the app).")
    var inboundPort: Int = 15006

    @Option(help: "Admin port on 127.0.0.1: /ready, /config_dump, /stats, /metrics.")
    var adminPort: Int = 15000

    @Option(
        help: """
            Status port on all addresses (0.0.0.0): /healthz/ready, 200 once a config is loaded and the \
            listeners are bound (the injected sidecar's startup and readiness probe), and \
            /app-health/<container>/<probe>, the app's HTTP probes \
            that the injector rewrote, run from the proxy (their originals in WEFT_APP_PROBES). Default: off.
            """)
    var statusPort: Int?

    @Option(
        help: """
            Addresses the outbound and inbound listeners bind, separated by commas: 0.0.0.0,:: takes both \
            families (IPv6 only on ::, so each connection keeps its own family; skipped with a warning where the \
            kernel has no IPv6). An injected pod with capture uses 0.0.0.0,::.
            """)
    var listen: String = "127.0.0.1"

    @Option(help: "Event loop threads (default: one per core).")
    var concurrency: Int?

    @Option(help: "JSON access log, one line per request: a file path, or - for standard output (default: off).")
    var accessLog: String?

    @Option(help: "Seconds a client has to send a request head (HTTP/1.1) before a 408.")
    var headerTimeout: Double = 10

    @Option(
        help:
            "Seconds a keep-alive client connection (HTTP/1.1) may be idle, no request in flight, before it is closed.")
    var idleTimeout: Double = 300

    @Option(help: "Seconds a request body may make no progress before the request is aborted (408 body_timeout).")
    var bodyTimeout: Double = 30

    @Option(
        help:
            "Seconds an idle keep-alive connection (HTTP/1.1) keeps its HTTP handlers before it drops them (about 3 KiB; back with its next byte); 0: never."
    )
    var dormantAfter: Double = 1

    @Option(help: "Client connections open at most, both listeners (default 10,000, or 3/4 of the fd limit).")
    var maxConnections: Int?

    @Option(help: "MiB of request bodies the proxy holds in memory (retry buffers, bodies waiting for a connection).")
    var maxBufferedMib: Int = 64

    @Option(
        help: "A protocol an HTTP/1.1 Upgrade may switch to (a tunnel); repeat for more. Default: websocket.")
    var allowUpgrade: [String] = []

    @Option(help: "Milliseconds a connection to an inbound `detect` port may stay silent before it is proxied as TCP.")
    var detectTimeoutMs: Int = 200

    @Option(help: "Seconds in-flight requests get to finish on SIGTERM before their connections are closed.")
    var drainTimeout: Double = 5

    @Option(
        help: """
            Export a span per request over OTLP/HTTP to this collector (e.g. http://127.0.0.1:4318). Also on when \
            OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set; the other OTEL_* variables \
            (protocol, headers, sampler, batch delay) apply.
            """)
    var otlpEndpoint: String?

    @Option(help: "The proxy's certificate chain (PEM, leaf first: its SVID) for mTLS; re-read when it changes.")
    var tlsCert: String?

    @Option(help: "The private key (PEM) of --tls-cert.")
    var tlsKey: String?

    @Option(help: "The trust bundle (PEM roots) peers' certificates must chain to.")
    var trustBundle: String?

    @Option(
        help: """
            With --controller: the CA file (PEM roots) the controller's certificate is checked against. The proxy \
            then gets its certificate (SVID) from the controller's CA with --token-file, renews it at about half \
            its lifetime, and opens the push stream over mTLS.
            """)
    var controllerCA: String?

    @Option(help: "The token the proxy proves its service account with (projected, audience weft); re-read each time.")
    var tokenFile: String = "/var/run/secrets/weft/token"

    @Option(help: "The proxy's service account (its SPIFFE ID's sa/ segment). Default: $POD_SERVICE_ACCOUNT, default.")
    var serviceAccount: String?

    @Option(help: "The mesh's trust domain.")
    var trustDomain: String = "cluster.local"

    @Option(
        help: "The controller's namespace: its certificate must be spiffe://<trust domain>/ns/<it>/sa/weft-controller.")
    var controllerNamespace: String = "weft-system"

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func run() async throws {
        let level = Logger.Level(rawValue: self.logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let logger = Logger(label: "weft.proxy")

        // The app's probes, which the injector moved to the status port: a value the proxy cannot use stops it
        // here, with the field, rather than failing the kubelet's probes one by one.
        let appProbes: AppProbes
        do {
            appProbes =
                try ProcessInfo.processInfo.environment[AppProbes.environmentVariable].map {
                    try AppProbes(json: $0)
                } ?? AppProbes()
        } catch {
            throw ValidationError("\(error)")
        }
        let threads = max(1, self.concurrency ?? System.coreCount)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let store = ProxyStateStore()
        let metrics = ProxyMetrics()
        var sources: [any Service] = []
        var identitySource: IdentityClient?
        var identityCertificates: InMemoryCertificateSource?
        if let config = self.config {
            sources.append(
                ConfigFileWatcher(
                    path: config, store: store, metrics: metrics, logger: Logger(label: "weft.proxy.config")))
        }
        if let controller = self.controller {
            let environment = ProcessInfo.processInfo.environment
            guard
                let proxyID = self.proxyID
                    ?? environment["POD_NAMESPACE"].flatMap({ namespace in
                        environment["POD_NAME"].map { "\(namespace)/\($0)" }
                    })
            else {
                throw ValidationError("--controller needs --proxy-id NAMESPACE/POD (or POD_NAMESPACE and POD_NAME)")
            }
            guard let colon = controller.lastIndex(of: ":"),
                let port = Int(controller[controller.index(after: colon)...])
            else {
                throw ValidationError("--controller must be HOST:PORT, got \"\(controller)\"")
            }
            let host = String(controller[..<colon])
            var pushTLS: PushClient.Configuration.TLS?
            if let controllerCA = self.controllerCA {
                guard self.tlsCert == nil else {
                    throw ValidationError("--controller-ca (certificates from the controller) excludes --tls-cert")
                }
                let namespace = String(proxyID.split(separator: "/").first ?? "")
                let account = self.serviceAccount ?? environment["POD_SERVICE_ACCOUNT"] ?? "default"
                let (identity, controllerIdentity): (SpiffeID, SpiffeID)
                do {
                    let domain = try TrustDomain(self.trustDomain)
                    identity = try SpiffeID(trustDomain: domain, namespace: namespace, serviceAccount: account)
                    controllerIdentity = try SpiffeID(
                        trustDomain: domain, namespace: self.controllerNamespace, serviceAccount: "weft-controller")
                } catch {
                    throw ValidationError("the proxy's identity: \(error)")
                }
                let source = InMemoryCertificateSource()
                identityCertificates = source
                identitySource = IdentityClient(
                    configuration: .init(
                        host: host, port: port, identity: identity, controllerIdentity: controllerIdentity,
                        tokenPath: self.tokenFile,
                        controllerCAPEM: try String(contentsOfFile: controllerCA, encoding: .utf8)),
                    certificates: source, logger: Logger(label: "weft.proxy.identity"))
                pushTLS = .init(certificates: source, controllerIdentity: controllerIdentity)
            }
            sources.append(
                PushClient(
                    configuration: .init(host: host, port: port, proxyID: proxyID, tls: pushTLS),
                    installer: ConfigInstaller(
                        store: store, metrics: metrics, logger: Logger(label: "weft.proxy.config")),
                    logger: Logger(label: "weft.push")))
        }
        guard !sources.isEmpty else { throw ValidationError("give --config FILE, --controller HOST:PORT, or both") }
        let limits = ProxyLimits(
            headerTimeout: .milliseconds(Int64(self.headerTimeout * 1000)),
            detectTimeout: .milliseconds(Int64(self.detectTimeoutMs)),
            idleTimeout: .milliseconds(Int64(self.idleTimeout * 1000)),
            upgradeProtocols: self.allowUpgrade.isEmpty ? ["websocket"] : self.allowUpgrade,
            maxDownstreamConnections: self.maxConnections ?? defaultMaxConnections(),
            maxBufferedBytes: self.maxBufferedMib << 20,
            bodyTimeout: .milliseconds(Int64(self.bodyTimeout * 1000)),
            dormantAfter: .milliseconds(Int64(self.dormantAfter * 1000)))
        let overload = OverloadManager(limits)
        var tracing: (tracer: ProxyTracer, service: any Service)?
        let environment = ProcessInfo.processInfo.environment
        if self.otlpEndpoint != nil || environment["OTEL_EXPORTER_OTLP_ENDPOINT"] != nil
            || environment["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] != nil
        {
            var configuration = OTel.Configuration.default
            configuration.serviceName = "weft-proxy"
            configuration.logs.enabled = false
            configuration.metrics.enabled = false
            configuration.traces.otlpExporter.protocol = .httpProtobuf
            if let endpoint = self.otlpEndpoint {
                // A base URL, like OTEL_EXPORTER_OTLP_ENDPOINT: the traces path is appended.
                let base = endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint
                configuration.traces.otlpExporter.endpoint =
                    base.hasSuffix("/v1/traces") ? base : base + "/v1/traces"
            }
            let backend = try OTel.makeTracingBackend(configuration: configuration)
            tracing = (ProxyTracer(backend.factory), backend.service)
        }
        let accessLog = self.accessLog.map { AccessLog(path: $0, logger: Logger(label: "weft.proxy.access")) }
        let drain = Duration.milliseconds(Int64(self.drainTimeout * 1000))
        var certificates: FileCertificateSource?
        switch (self.tlsCert, self.tlsKey, self.trustBundle) {
        case (nil, nil, nil):
            break
        case (let cert?, let key?, let bundle?):
            certificates = try FileCertificateSource(
                certificatePath: cert, keyPath: key, bundlePath: bundle, logger: Logger(label: "weft.proxy.tls"))
        default:
            throw ValidationError("--tls-cert, --tls-key and --trust-bundle go together")
        }
        let meshTLS =
            identityCertificates.map { MeshTLS(source: $0) } ?? certificates.map { MeshTLS(source: $0) }
        let outbound = ProxyListener(
            direction: .outbound, host: self.listen, port: self.outboundPort, store: store, metrics: metrics,
            group: group, limits: limits, accessLog: accessLog, tracer: tracing?.tracer, drainTimeout: drain,
            meshTLS: meshTLS, overload: overload, proxyPorts: [self.outboundPort, self.inboundPort],
            logger: Logger(label: "weft.proxy.outbound"))
        let inbound = ProxyListener(
            direction: .inbound, host: self.listen, port: self.inboundPort, store: store, metrics: metrics,
            group: group, limits: limits, accessLog: accessLog, tracer: tracing?.tracer, drainTimeout: drain,
            meshTLS: meshTLS, overload: overload, proxyPorts: [self.outboundPort, self.inboundPort],
            logger: Logger(label: "weft.proxy.inbound"))
        let admin = AdminServer(
            port: self.adminPort, store: store, metrics: metrics, renderMetrics: { registry.emitToString() },
            logger: Logger(label: "weft.proxy.admin"))
        var services: [any Service] = sources + [outbound, inbound, admin]
        if let statusPort = self.statusPort {
            services.append(
                StatusServer(
                    port: statusPort, store: store, probes: appProbes, logger: Logger(label: "weft.proxy.status")))
        }
        if let identitySource {
            services.append(identitySource)
        }
        if let accessLog {
            services.append(accessLog)
        }
        if let certificates {
            services.append(certificates)
        }
        if let tracing {
            services.append(tracing.service)
        }
        let serviceGroup = ServiceGroup(
            configuration: .init(
                services: services.map { .init(service: $0) },
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await serviceGroup.run()
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        try await group.shutdownGracefully()
    }
}

/// 10,000 client connections, or three quarters of the soft file descriptor limit when that is lower (the rest
/// is for upstream connections, listeners and files).
func defaultMaxConnections() -> Int {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else {
        return 10_000
    }
    return max(1, min(10_000, Int(clamping: limit.rlim_cur) / 4 * 3))
}
