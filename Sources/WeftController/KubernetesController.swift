import KubeClient
import KubeModel
import Logging
import Metrics
import ServiceLifecycle
import WeftAPI
import WeftCompiler

/// The controller against a cluster: informers feed the reconciler; the leader writes status conditions and
/// Events; every replica watches and compiles (so a new leader has everything at once).
public final class KubernetesController: Service {
    public struct Options: Sendable {
        /// Leader election; nil: this replica always writes (a single replica, or tests).
        public var leaderElection: LeaderElector.Configuration?
        public var rootNamespace: String
        public var informer: Informer<core.v1.Pod>.Configuration
        public var debounceQuiet: Duration
        public var debounceMax: Duration
        /// Drives the leader election's retry, renew and expiry timings (tests step a manual clock).
        public var leaderElectionClock: any Clock<Duration>
        /// The mesh's trust bundle (PEM): when set, the leader publishes it as `weft-ca-root` in every namespace
        /// (``TrustBundlePublisher``).
        public var trustBundle: String?
        /// With `trustBundle`: the leader keeps the caBundle of `weft-injector` and `weft-validator` on it
        /// (``WebhookConfigurationPatcher``), and their `clientConfig.url` on `webhookURL` when that is set.
        public var patchWebhookConfigurations = false
        public var webhookURL: String?

        public init(
            leaderElection: LeaderElector.Configuration? = .init(),
            rootNamespace: String = weft.v1alpha1.rootNamespace,
            informer: Informer<core.v1.Pod>.Configuration = .init(),
            debounceQuiet: Duration = .milliseconds(50), debounceMax: Duration = .seconds(1),
            leaderElectionClock: any Clock<Duration> = ContinuousClock()
        ) {
            self.leaderElectionClock = leaderElectionClock
            self.leaderElection = leaderElection
            self.rootNamespace = rootNamespace
            self.informer = informer
            self.debounceQuiet = debounceQuiet
            self.debounceMax = debounceMax
        }
    }

    public let source: KubernetesSource
    public let elector: LeaderElector?
    private let reconciler: Reconciler
    private let writer: StatusWriter
    private let state: ControllerState
    private let client: KubeClient?
    private let logger: Logger
    private let webhookPatcher: WebhookConfigurationPatcher?
    private let retryDepth = Gauge(label: "weft_controller_status_retry_queue_depth")

    /// A controller over any API implementation.
    public convenience init(
        api: any KubeAPI, state: ControllerState, options: Options = .init(), stages: [any CompileResultStage] = [],
        logger: Logger
    ) {
        self.init(api: api, client: nil, state: state, options: options, stages: stages, logger: logger)
    }

    /// A controller that talks to the cluster of `configuration`, and closes its client when it stops.
    public convenience init(
        configuration: KubeConfiguration, state: ControllerState, options: Options = .init(),
        stages: [any CompileResultStage] = [], logger: Logger
    ) throws {
        let client = try KubeClient(configuration: configuration, logger: logger)
        self.init(api: client, client: client, state: state, options: options, stages: stages, logger: logger)
    }

    private init(
        api: any KubeAPI, client: KubeClient?, state: ControllerState, options: Options,
        stages: [any CompileResultStage], logger: Logger
    ) {
        self.client = client
        self.state = state
        self.logger = logger
        let source = KubernetesSource(
            api: api, rootNamespace: options.rootNamespace, informer: options.informer,
            logger: logger)
        self.source = source
        let elector = options.leaderElection.map {
            LeaderElector(api: api, configuration: $0, clock: options.leaderElectionClock, logger: logger)
        }
        self.elector = elector
        let writer = StatusWriter(
            api: api, lookup: { source.current($0) }, isLeader: { elector?.isLeader ?? true },
            identity: options.leaderElection?.identity ?? LeaderElector.defaultIdentity(), logger: logger)
        self.writer = writer
        var sinks: [any CompileResultSink] = [writer]
        if let bundle = options.trustBundle {
            sinks.append(
                TrustBundlePublisher(
                    api: api, bundle: bundle, isLeader: { elector?.isLeader ?? true }, logger: logger))
        }
        self.webhookPatcher = options.trustBundle.flatMap { bundle in
            options.patchWebhookConfigurations
                ? WebhookConfigurationPatcher(
                    api: api, trustBundle: bundle, webhookURL: options.webhookURL,
                    isLeader: { elector?.isLeader ?? true }, logger: logger) : nil
        }
        self.reconciler = Reconciler(
            source: source, state: state, stages: stages, sinks: sinks, logger: logger,
            quiet: options.debounceQuiet, maxDelay: options.debounceMax)
    }

    /// Ready once every informer has synced and the first compile is done.
    public var isReady: Bool {
        get async { await self.source.hasSynced && self.state.hasCompiled }
    }

    /// Asks for a compile (level-triggered: it reads the whole current state), e.g. after a proxy's ACK.
    public func signal() {
        self.reconciler.signal()
    }

    /// Whether this replica writes status now.
    public var isLeader: Bool { self.elector?.isLeader ?? true }

    public func run() async throws {
        do {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { try await self.reconciler.run() }
                group.addTask {
                    // A failed status write comes back after its backoff: compile and write again. `next()`
                    // returns nil when this task is cancelled, which graceful shutdown does here.
                    await cancelWhenGracefulShutdown {
                        while let ref = await self.writer.retries.next() {
                            self.retryDepth.record(await self.writer.retries.count)
                            self.reconciler.signal()
                            await self.writer.retries.done(ref)
                        }
                    }
                }
                if let patcher = self.webhookPatcher { group.addTask { try await patcher.run() } }
                if let elector = self.elector {
                    group.addTask { try await elector.run() }
                    group.addTask {
                        // A new leader writes what it has compiled at once.
                        for await leading in elector.leadershipChanges.cancelOnGracefulShutdown() where leading {
                            self.logger.info("became leader")
                            self.reconciler.signal()
                        }
                    }
                }
            }
        } catch {
            try? await self.client?.shutdown()
            throw error
        }
        try await self.client?.shutdown()
    }
}
