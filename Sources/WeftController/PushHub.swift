import Foundation
import KubeModel
import Logging
import Metrics
import ProxyConfig
import Synchronization
import WeftCompiler
import WeftPush

/// The controller's side of every proxy's push stream: the newest config for each proxy, one
/// ``PushStreamStateMachine`` per open stream, and the ``ProgrammedLedger`` of what each proxy acknowledged.
///
/// As a compile stage it takes each compile's configs (only proxies whose version changed are pushed) and
/// adds the `Programmed` condition to every resource's status. An ACK or NACK calls `onAnswer` (the
/// reconciler's signal), so conditions follow the acknowledgements without waiting for a cluster change.
public final class PushHub: CompileResultStage {
    /// One proxy as `weftctl proxy-status` shows it.
    public struct ProxyStatus: Codable, Sendable, Hashable {
        public enum Sync: String, Codable, Sendable {
            /// Connected, and running the newest version.
            case synced = "SYNCED"
            /// Connected; the newest version is sent or about to be.
            case stale = "STALE"
            /// Connected; it refused the newest version and runs an older one.
            case nacked = "NACKED"
            /// Not connected.
            case disconnected = "DISCONNECTED"
        }

        public var id: String
        public var identity: String
        public var build: String?
        public var connectedSince: String?
        public var sent: String?
        public var acknowledged: String?
        public var desired: String
        public var status: Sync
        public var error: String?
        /// The controller replica it streams from, when that is another one (in a cluster with several).
        public var replica: String?
    }

    typealias Machine = PushStreamStateMachine<ProxyConfig>

    /// A config to write on a stream; the writer encodes it (`message()`), off the hub's lock. With `base` (the
    /// config the proxy acknowledged on this stream) it goes as a delta when few entries changed.
    struct Outgoing: Sendable {
        var config: ProxyConfig
        var nonce: String
        var base: ProxyConfig?
        var trustBundle = ""

        func message() throws -> Weft_Push_V1_ControllerMessage {
            if let base = self.base, let delta = ProxyConfigDelta.between(base, self.config) {
                let payload = try delta.encoded()
                return .with {
                    $0.delta = .with {
                        $0.version = self.config.version
                        $0.nonce = self.nonce
                        $0.baseVersion = base.version
                        $0.proxyConfigDelta = payload
                        $0.trustBundlePem = self.trustBundle
                    }
                }
            }
            let payload = try self.config.encodedCompact()
            return .with {
                $0.config = .with {
                    $0.version = self.config.version
                    $0.nonce = self.nonce
                    $0.proxyConfig = payload
                    $0.trustBundlePem = self.trustBundle
                }
            }
        }
    }

    private struct Stream {
        var proxyID: String
        var build: String
        var connectedSince: Date
        var machine = Machine()
        var outbox: AsyncStream<Outgoing>.Continuation
        /// The config the proxy acknowledged on this stream (the base of deltas), and the one in flight.
        var running: ProxyConfig?
        var inFlight: ProxyConfig?
    }

    private struct State {
        var configs: [String: Machine.Config] = [:]
        var identities: [String: String] = [:]
        var streams: [Int: Stream] = [:]
        var nextStream = 0
        var ledger = ProgrammedLedger()
        var onAnswer: (@Sendable () -> Void)?
        /// Proxies streaming from other replicas, from their reports.
        var remote: [String: RemoteProxy] = [:]
        /// The mesh CA's roots, sent with every config.
        var trustBundle = ""
    }

    private struct RemoteProxy: Hashable {
        var replica: String
        var entry: PushReport.Entry
    }

    private let state = Mutex(State())
    private let logger: Logger
    private let now: @Sendable () -> Date
    private let sent = Counter(label: "weft_push_sent_total")
    private let acks = Counter(label: "weft_push_acks_total")
    private let nacks = Counter(label: "weft_push_nacks_total")
    private let connected = Gauge(label: "weft_push_streams")

    public init(logger: Logger, now: @escaping @Sendable () -> Date = { Date() }) {
        self.logger = logger
        self.now = now
    }

    /// The trust bundle (PEM roots of the mesh CA) to send with every config from now on.
    public func trustBundle(_ pem: String) {
        self.state.withLock { $0.trustBundle = pem }
    }

    /// Called after every ACK or NACK (set it to the reconciler's `signal`).
    public func onAnswer(_ callback: @escaping @Sendable () -> Void) {
        self.state.withLock { $0.onAnswer = callback }
    }

    // MARK: - Compile stage

    public func process(_ result: inout CompileResult, snapshot: WeftSnapshot) async {
        // Only proxies whose version changed are pushed; configs are kept as values (they share their outbound
        // and cluster lists) and encoded by each stream's writer.
        let known = self.state.withLock { $0.configs.mapValues(\.version) }
        var changed: [String: Machine.Config] = [:]
        for (id, config) in result.proxies where known[id] != config.version {
            changed[id] = Machine.Config(version: config.version, payload: config)
        }
        let versions = result.proxies.mapValues(\.version)
        let identities = result.proxies.mapValues(\.proxy.spiffeID)
        let generations = result.statuses.mapValues(\.generation)
        let sends = self.state.withLock { state -> Int in
            state.configs = state.configs.filter { versions[$0.key] != nil }.merging(changed) { $1 }
            state.identities = identities
            state.ledger.compiled(versions: versions, generations: generations)
            Self.applyRemote(&state)
            var sends = 0
            for (id, var stream) in state.streams {
                guard let config = changed[stream.proxyID] else { continue }
                if Self.perform(stream.machine.desire(config), on: &stream, bundle: state.trustBundle) { sends += 1 }
                state.streams[id] = stream
            }
            for (ref, status) in result.statuses {
                let accepted = status.condition(ConditionType.accepted)?.status == .true
                let programmed = state.ledger.programmed(
                    ref, affected: status.affectedProxies, accepted: accepted, generation: status.generation)
                result.statuses[ref]?.conditions.append(programmed)
            }
            return sends
        }
        self.sent.increment(by: sends)
    }

    // MARK: - Streams

    /// Opens a stream for a proxy that says it runs `running`; its messages arrive on the returned stream
    /// (bounded: at most one config is in flight on a stream).
    func open(proxyID: String, running: String, build: String) -> (Int, AsyncStream<Outgoing>) {
        let (messages, outbox) = AsyncStream.makeStream(of: Outgoing.self, bufferingPolicy: .bufferingNewest(2))
        let now = self.now()
        let id = self.state.withLock { state -> Int in
            state.nextStream += 1
            var stream = Stream(proxyID: proxyID, build: build, connectedSince: now, outbox: outbox)
            _ = stream.machine.hello(running: running)
            if !running.isEmpty { state.ledger.acknowledged(proxyID, version: running) }
            if let config = state.configs[proxyID] {
                if config.version == running { stream.running = config.payload }
                Self.perform(stream.machine.desire(config), on: &stream, bundle: state.trustBundle)
            }
            state.streams[state.nextStream] = stream
            return state.nextStream
        }
        self.connected.record(self.state.withLock { $0.streams.count })
        self.logger.info(
            "proxy connected",
            metadata: ["proxy.id": "\(proxyID)", "push.version": "\(running)", "proxy.build": "\(build)"])
        if !running.isEmpty { self.answered() }
        return (id, messages)
    }

    /// The proxy on stream `id` acknowledged a config.
    func acknowledged(_ id: Int, version: String, nonce: String) {
        self.acks.increment()
        self.state.withLock { state in
            guard var stream = state.streams[id] else { return }
            let answered = stream.machine.inFlight?.nonce == nonce
            let action = stream.machine.acknowledged(version: version, nonce: nonce)
            if stream.machine.running == version {
                state.ledger.acknowledged(stream.proxyID, version: version)
                if answered, stream.inFlight?.version == version { stream.running = stream.inFlight }
            }
            if answered { stream.inFlight = nil }
            Self.perform(action, on: &stream, bundle: state.trustBundle)
            state.streams[id] = stream
        }
        self.answered()
    }

    /// The proxy on stream `id` refused a config.
    func refused(_ id: Int, version: String, nonce: String, error: String) {
        self.nacks.increment()
        let proxyID = self.state.withLock { state -> String? in
            guard var stream = state.streams[id] else { return nil }
            let answered = stream.machine.inFlight?.nonce == nonce
            let action = stream.machine.refused(version: version, nonce: nonce, error: error)
            if stream.machine.refused?.version == version {
                state.ledger.refused(stream.proxyID, version: version, error: error)
            }
            if answered { stream.inFlight = nil }
            Self.perform(action, on: &stream, bundle: state.trustBundle)
            state.streams[id] = stream
            return stream.proxyID
        }
        self.logger.warning(
            "proxy refused a config",
            metadata: ["proxy.id": "\(proxyID ?? "?")", "push.version": "\(version)", "error": "\(error)"])
        self.answered()
    }

    func close(_ id: Int) {
        let stream = self.state.withLock { $0.streams.removeValue(forKey: id) }
        stream?.outbox.finish()
        self.connected.record(self.state.withLock { $0.streams.count })
        if let stream { self.logger.info("proxy disconnected", metadata: ["proxy.id": "\(stream.proxyID)"]) }
    }

    /// Ends every stream (graceful shutdown: the proxies reconnect, to this replica or another).
    func closeAll() {
        let streams = self.state.withLock { state in
            defer { state.streams = [:] }
            return Array(state.streams.values)
        }
        for stream in streams { stream.outbox.finish() }
    }

    @discardableResult
    private static func perform(_ action: Machine.Action, on stream: inout Stream, bundle: String) -> Bool {
        guard case .send(let config, let nonce) = action else { return false }
        let base = stream.running?.version == stream.machine.running ? stream.running : nil
        stream.inFlight = config.payload
        stream.outbox.yield(Outgoing(config: config.payload, nonce: nonce, base: base, trustBundle: bundle))
        return true
    }

    private func answered() {
        self.state.withLock { $0.onAnswer }?()
    }

    // MARK: - Other replicas

    /// This replica's report: the acknowledged version and last refusal of every proxy streaming from it.
    public func report(replica: String) -> PushReport {
        self.state.withLock { state in
            var newest: [String: Stream] = [:]
            for stream in state.streams.values
            where (newest[stream.proxyID]?.connectedSince ?? .distantPast) <= stream.connectedSince {
                newest[stream.proxyID] = stream
            }
            return PushReport(
                replica: replica,
                proxies: newest.mapValues { stream in
                    PushReport.Entry(
                        acknowledged: stream.machine.running,
                        refused: stream.machine.refused.map {
                            ProgrammedLedger.Refusal(version: $0.version, error: $0.error)
                        })
                })
        }
    }

    /// The other replicas' current reports, oldest first (a proxy in two counts by the newer): a proxy with no
    /// stream here counts by its replica's report, so the leader's `Programmed` covers every replica's proxies.
    public func remoteReports(_ reports: [PushReport]) {
        let changed = self.state.withLock { state -> Bool in
            var remote: [String: RemoteProxy] = [:]
            for report in reports {
                for (id, entry) in report.proxies { remote[id] = RemoteProxy(replica: report.replica, entry: entry) }
            }
            guard remote != state.remote else { return false }
            state.remote = remote
            Self.applyRemote(&state)
            return true
        }
        if changed { self.answered() }
    }

    /// Feeds the ledger what other replicas' proxies answered (refusal first: an acknowledgement of the desired
    /// version clears it).
    private static func applyRemote(_ state: inout State) {
        guard !state.remote.isEmpty else { return }
        let local = Set(state.streams.values.map(\.proxyID))
        for (id, proxy) in state.remote where !local.contains(id) {
            if let refused = proxy.entry.refused {
                state.ledger.refused(id, version: refused.version, error: refused.error)
            }
            if let version = proxy.entry.acknowledged { state.ledger.acknowledged(id, version: version) }
        }
    }

    // MARK: - Reading

    /// Every proxy the last compile made a config for, and every connected one, by ID.
    public var proxies: [ProxyStatus] {
        self.state.withLock { state in
            var streams: [String: Stream] = [:]
            for stream in state.streams.values
            where (streams[stream.proxyID]?.connectedSince ?? .distantPast) < stream.connectedSince {
                streams[stream.proxyID] = stream
            }
            let ids = Set(state.ledger.proxies.keys).union(streams.keys).sorted()
            return ids.map { id in
                let ledger = state.ledger.proxies[id]
                let stream = streams[id]
                let remote = stream == nil ? state.remote[id] : nil
                let desired = ledger?.desired ?? ""
                let sync: ProxyStatus.Sync
                if stream == nil && remote == nil {
                    sync = .disconnected
                } else if let refused = ledger?.refused, refused.version == desired {
                    sync = .nacked
                } else if ledger?.isSynced == true {
                    sync = .synced
                } else {
                    sync = .stale
                }
                return ProxyStatus(
                    id: id, identity: state.identities[id] ?? "", build: stream?.build,
                    connectedSince: stream.map { rfc3339($0.connectedSince) }, sent: stream?.machine.lastSent,
                    acknowledged: ledger?.acknowledged, desired: desired, status: sync,
                    error: ledger?.refused?.error, replica: remote?.replica)
            }
        }
    }

    /// How many proxies are connected and run the newest version (what `proxies` shows as SYNCED), counted
    /// without building the list.
    public var syncedCount: Int {
        self.state.withLock { state in
            let connected = Set(state.streams.values.map(\.proxyID)).union(state.remote.keys)
            return state.ledger.proxies.count { connected.contains($0.key) && $0.value.isSynced }
        }
    }

    /// The SPIFFE ID the last compile gave a proxy (`namespace/pod`); nil for a proxy it made no config for.
    public func identity(of proxyID: String) -> String? {
        self.state.withLock { $0.identities[proxyID] }
    }

    /// The config the controller has for a proxy, in its (pretty-printed) JSON encoding.
    public func config(for proxyID: String) -> [UInt8]? {
        let config = self.state.withLock { $0.configs[proxyID]?.payload }
        return config.flatMap { try? $0.encoded() }.map { Array($0) }
    }
}
