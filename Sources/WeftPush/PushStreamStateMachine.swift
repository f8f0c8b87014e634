/// The controller's side of one proxy's push stream, as a value that returns actions (the service writes).
///
/// At most one config is in flight (sent, not yet answered). A newer config arriving meanwhile replaces any
/// older one waiting: a slow proxy gets the newest version, never a queue of stale ones. A version the proxy
/// already runs (acknowledged, or named in its hello when it reconnects) is not sent again; a version it refused
/// (NACK) is not sent again until a newer one exists.
///
/// `Payload` is what the service turns into the message (the controller keeps the config value and encodes it
/// when it writes, so a compile of many proxies holds no encoded copies).
public struct PushStreamStateMachine<Payload: Sendable & Hashable>: Sendable {
    /// A config to push: its version (the content hash) and its content.
    public struct Config: Sendable, Hashable {
        public var version: String
        public var payload: Payload

        public init(version: String, payload: Payload) {
            self.version = version
            self.payload = payload
        }
    }

    public enum Action: Sendable, Hashable {
        case none
        /// Write this config with this nonce.
        case send(Config, nonce: String)
    }

    /// What the proxy answered last.
    public enum Answer: Sendable, Hashable {
        case acknowledged(version: String)
        case refused(version: String, error: String)
    }

    /// The version the proxy runs, by its acknowledgement (or its hello).
    public private(set) var running: String?
    /// The latest refusal, while no later version was acknowledged.
    public private(set) var refused: (version: String, error: String)?
    /// The config sent and not yet answered.
    public private(set) var inFlight: (version: String, nonce: String)?
    /// The newest config the controller wants the proxy to run.
    public private(set) var desired: Config?
    /// The version and nonce of the last config sent.
    public private(set) var lastSent: String?
    private var nonces: UInt64 = 0
    private var greeted = false

    public init() {}

    /// The proxy's hello: the version it already runs (empty: none).
    public mutating func hello(running version: String) -> Action {
        self.greeted = true
        if !version.isEmpty { self.running = version }
        return self.next()
    }

    /// The controller compiled a config for this proxy (the same version again is no change).
    public mutating func desire(_ config: Config) -> Action {
        guard config.version != self.desired?.version else { return .none }
        self.desired = config
        return self.next()
    }

    /// The proxy applied the config it was sent with `nonce`. An answer to anything else is stale and ignored.
    public mutating func acknowledged(version: String, nonce: String) -> Action {
        guard let inFlight = self.inFlight, inFlight.nonce == nonce, inFlight.version == version else {
            return .none
        }
        self.inFlight = nil
        self.running = version
        self.refused = nil
        return self.next()
    }

    /// The proxy refused the config it was sent with `nonce`, and keeps running the one before.
    public mutating func refused(version: String, nonce: String, error: String) -> Action {
        guard let inFlight = self.inFlight, inFlight.nonce == nonce, inFlight.version == version else {
            return .none
        }
        self.inFlight = nil
        self.refused = (version, error)
        return self.next()
    }

    /// Sends the desired config once the proxy said hello, when nothing is in flight and the proxy neither runs
    /// nor refused it.
    private mutating func next() -> Action {
        guard self.greeted, self.inFlight == nil, let desired = self.desired, desired.version != self.running,
            desired.version != self.refused?.version
        else { return .none }
        self.nonces += 1
        let nonce = String(self.nonces)
        self.inFlight = (desired.version, nonce)
        self.lastSent = desired.version
        return .send(desired, nonce: nonce)
    }
}
