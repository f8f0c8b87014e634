import ArgumentParser
import Foundation
import KubeClient
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import WeftCompiler
import WeftController
import WeftIdentity

@main
struct WeftControllerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "weft-controller",
        abstract: "The Weft control plane: watches the cluster, compiles proxy configs, writes status conditions.",
        discussion: """
            With --manifests DIR it runs on a folder of manifests instead of a cluster (the embedded default): \
            it re-reads the folder when a file changes and serves the conditions at /status instead of \
            writing them.
            """
    )

    enum LogFormat: String, ExpressibleByArgument, CaseIterable {
        case auto, json, text
    }

    @Option(help: "Run on this folder (or file) of manifests instead of a cluster.")
    var manifests: String?

    @Option(help: "A kubeconfig file (out of cluster). Default: $KUBECONFIG, ~/.kube/config, then in-cluster.")
    var kubeconfig: String?

    @Option(help: "The kubeconfig context to use.")
    var context: String?

    @Flag(inversion: .prefixedEnableDisable, help: "Leader election (only the leader writes status).")
    var leaderElect: Bool = true

    @Option(help: "The mesh's root namespace: the leader Lease and the weft-config ConfigMap live here.")
    var leaseNamespace: String = "weft-system"

    @Option(help: "Port for /healthz, /readyz, /metrics and /status.")
    var metricsPort: Int = 15014

    @Option(help: "Port of the config push stream (gRPC) the proxies connect to.")
    var pushPort: Int = 15012

    @Option(help: "HTTPS port of the admission webhooks, /inject and /validate (0: any free port).")
    var webhookPort: Int = 15017

    @Option(
        help: """
            A DNS name or IP address for the webhook's certificate besides weft-controller.<namespace>.svc \
            (repeatable): the host the API server dials when it reaches the webhook by URL.
            """)
    var webhookHost: [String] = []

    @Option(
        help: ArgumentHelp(
            "The API server reaches the webhooks at this URL (https://HOST:PORT, the controller out of cluster): "
                + "the leader sets clientConfig.url of weft-injector and weft-validator to it plus /inject, /validate.",
            valueName: "url"))
    var webhookURL: String?

    @Option(
        help: "A user-provided webhook certificate chain (PEM, e.g. from cert-manager) instead of one from the mesh CA."
    )
    var webhookCert: String?

    @Option(help: "The private key (PEM) of --webhook-cert.")
    var webhookKey: String?

    @Option(help: "Address to listen on.")
    var listen: String = "0.0.0.0"

    @Option(help: "The mesh's trust domain: identities are spiffe://<trust domain>/ns/<namespace>/sa/<name>.")
    var trustDomain: String = "cluster.local"

    @Option(help: "Lifetime of the workload certificates (X.509-SVIDs) the CA issues: e.g. 24h, 90m, 600s.")
    var svidLifetime: String = "24h"

    @Option(
        help: """
            Manifests mode: a folder for the controller's state: the mesh CA (weft-ca/tls.crt, tls.key, ca.crt),             kept across restarts, and trust-bundle.pem for the proxies' --controller-ca. Without it the CA lives             in memory and is new at every start.
            """)
    var stateDir: String?

    @Option(
        help: """
            Manifests mode: the tokens proxies may sign with, one "TOKEN NAMESPACE/SERVICEACCOUNT" a line             (# comments). In a cluster, tokens are checked with the TokenReview API instead.
            """)
    var bootstrapTokens: String?

    @Option(help: "Log format: json, text, or auto (json when stderr is not a terminal).")
    var logFormat: LogFormat = .auto

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func run() async throws {
        let level = Logger.Level(rawValue: self.logLevel) ?? .info
        let json = self.logFormat == .json || (self.logFormat == .auto && isatty(STDERR_FILENO) == 0)
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler =
                json ? JSONLogHandler(label: label) : StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let logger = Logger(label: "weft.controller")

        guard let lifetime = Self.seconds(self.svidLifetime), lifetime > 0 else {
            throw ValidationError("--svid-lifetime must be a positive duration like 24h, 90m or 600s")
        }
        let trustDomain: TrustDomain
        do {
            trustDomain = try TrustDomain(self.trustDomain)
        } catch {
            throw ValidationError("--trust-domain: \(error)")
        }
        if let url = self.webhookURL, URL(string: url)?.scheme != "https" || URL(string: url)?.host == nil {
            throw ValidationError("--webhook-url must be https://HOST:PORT, got \(url)")
        }
        if self.manifests == nil, self.stateDir != nil || self.bootstrapTokens != nil {
            throw ValidationError("--state-dir and --bootstrap-tokens are for --manifests mode")
        }

        let state = ControllerState()
        let hub = PushHub(logger: Logger(label: "weft.push"))
        var services: [any Service] = []
        let ready: ControllerHTTPServer.Readiness
        let admission: AdmissionReviewer.Context
        let injectionDefaults = InjectionSettings(
            controllerAddress: "weft-controller.\(self.leaseNamespace).svc:15012", trustDomain: self.trustDomain,
            rootNamespace: self.leaseNamespace)
        let ca: MeshCA
        let authenticator: any WorkloadAuthenticator
        var kubeForIdentity: KubeClient?
        if let manifests = self.manifests {
            ca = try await MeshCA.load(
                from: self.stateDir.map { .directory($0) } ?? .memory, rootNamespace: self.leaseNamespace,
                trustDomain: trustDomain, svidLifetime: lifetime, logger: Logger(label: "weft.ca"))
            let tokens = try self.bootstrapTokens.map { try String(contentsOfFile: $0, encoding: .utf8) } ?? ""
            authenticator = try BootstrapTokenAuthenticator(parsing: tokens)
            if let stateDir = self.stateDir {
                let bundle = URL(fileURLWithPath: stateDir).appendingPathComponent("trust-bundle.pem")
                try Data(try ca.trustBundlePEM.utf8).write(to: bundle, options: .atomic)
            }
            let source = ManifestSource(path: manifests, logger: Logger(label: "weft.manifests"))
            let reconciler = Reconciler(source: source, state: state, stages: [hub], logger: logger)
            hub.onAnswer { reconciler.signal() }
            ready = { await source.hasSynced && state.hasCompiled }
            admission = .init(
                injectionSettings: { injectionDefaults },
                namespaceLabels: { name in
                    await source.snapshot().namespaces.first { $0.metadata.name == name }.map {
                        $0.metadata.labels ?? [:]
                    }
                }, snapshot: { await source.snapshot() })
            services.append(reconciler)
            logger.info("running on manifests", metadata: ["manifest.path": "\(manifests)"])
        } else {
            let kube = try KubeConfiguration.load(kubeconfig: self.kubeconfig, context: self.context)
            let client = try KubeClient(configuration: kube, logger: Logger(label: "weft.ca"))
            kubeForIdentity = client
            ca = try await MeshCA.load(
                from: .secret(client), rootNamespace: self.leaseNamespace, trustDomain: trustDomain,
                svidLifetime: lifetime, logger: Logger(label: "weft.ca"))
            authenticator = TokenReviewAuthenticator(api: client)
            var options = KubernetesController.Options()
            let replica = LeaderElector.defaultIdentity()
            options.leaderElection =
                self.leaderElect ? LeaderElector.Configuration(namespace: self.leaseNamespace, identity: replica) : nil
            options.rootNamespace = self.leaseNamespace
            options.trustBundle = try ca.trustBundlePEM
            // A user-provided certificate (cert-manager) comes with its own caBundle injection.
            options.patchWebhookConfigurations = self.webhookCert == nil
            options.webhookURL = self.webhookURL
            let controller = try KubernetesController(
                configuration: kube, state: state, options: options, stages: [hub], logger: logger)
            hub.onAnswer { controller.signal() }
            ready = { await controller.isReady }
            admission = .init(
                injectionSettings: { controller.source.injectionSettings(defaults: injectionDefaults) },
                namespaceLabels: { controller.source.namespaceLabels($0) },
                snapshot: { await controller.source.snapshot() })
            services.append(controller)
            // What this replica's proxies acknowledged, for the leader's Programmed (and the others' for it).
            services.append(
                PushReporter(
                    api: client, hub: hub,
                    configuration: .init(
                        namespace: self.leaseNamespace, replica: replica,
                        name: PushReport.configMapName(host: ProcessInfo.processInfo.hostName)),
                    logger: Logger(label: "weft.push.report")))
            logger.info("running on a cluster", metadata: ["k8s.server": "\(kube.server)"])
        }
        hub.trustBundle(try ca.trustBundlePEM)
        let http = ControllerHTTPServer(
            host: self.listen, port: self.metricsPort, state: state, ready: ready,
            metrics: { registry.emitToString() }, hub: hub, logger: Logger(label: "weft.controller.http"))
        services.append(http)
        services.append(
            ConfigPushServer(
                host: self.listen, port: self.pushPort, hub: hub, tls: try PushServerTLS(ca: ca),
                identity: IdentityService(ca: ca, authenticator: authenticator, logger: Logger(label: "weft.ca")),
                logger: Logger(label: "weft.push")))
        let webhookTLS: WebhookTLS
        switch (self.webhookCert, self.webhookKey) {
        case (let certificate?, let key?): webhookTLS = try WebhookTLS(.files(certificate: certificate, key: key))
        case (nil, nil):
            webhookTLS = try WebhookTLS(
                .meshCA(ca, hosts: WebhookTLS.serviceHosts(rootNamespace: self.leaseNamespace) + self.webhookHost))
        default: throw ValidationError("--webhook-cert and --webhook-key go together")
        }
        services.append(
            AdmissionWebhookServer(
                host: self.listen, port: self.webhookPort, tls: webhookTLS,
                reviewer: AdmissionReviewer(context: admission, logger: Logger(label: "weft.webhook")),
                logger: Logger(label: "weft.webhook")))
        var configuration = ServiceGroupConfiguration(
            services: services.map { .init(service: $0) }, gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        // A backstop within Kubernetes' default 30 s grace period: whatever still runs 20 s after SIGTERM is
        // cancelled, and the process ends at most 5 s later.
        configuration.maximumGracefulShutdownDuration = .seconds(20)
        configuration.maximumCancellationDuration = .seconds(5)
        let group = ServiceGroup(configuration: configuration)
        do {
            try await group.run()
        } catch {
            try? await kubeForIdentity?.shutdown()
            throw error
        }
        try? await kubeForIdentity?.shutdown()
    }

    /// `24h`, `90m`, `600s`, `600` (seconds) → seconds.
    static func seconds(_ text: String) -> TimeInterval? {
        let units: [(String, TimeInterval)] = [("h", 3600), ("m", 60), ("s", 1)]
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            return TimeInterval(text.dropLast()).map { $0 * factor }
        }
        return TimeInterval(text)
    }
}
