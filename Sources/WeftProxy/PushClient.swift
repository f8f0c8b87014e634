import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import ProxyConfig
import ServiceLifecycle
import Synchronization
import WeftIdentity
import WeftPush

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The proxy's end of the config push stream (`--controller HOST:PORT`): one long-lived gRPC stream to the
/// controller, opened by the proxy. It says which workload it serves and which version it runs, installs each
/// config it receives through the same ``ConfigInstaller`` as the config file, and answers ACK (installed) or NACK
/// (refused, with the error: the last good config keeps serving). When the stream breaks it reconnects with
/// jittered exponential backoff and resumes from the version it runs; meanwhile it keeps serving.
public final class PushClient: Service {
    public struct Configuration: Sendable {
        public var host: String
        public var port: Int
        /// `namespace/pod`: the workload whose config to receive.
        public var proxyID: String
        public var initialBackoff: Duration
        public var maximumBackoff: Duration
        /// HTTP/2 PINGs on the idle stream, so a dead controller or a silently dropped connection is noticed.
        public var keepaliveInterval: Duration
        public var keepaliveTimeout: Duration
        /// mTLS to the controller: the proxy's SVID from `certificates` (what ``IdentityClient`` installs) as its
        /// client certificate, and the controller's certificate checked against that material's trust bundle and
        /// required to carry `controllerIdentity`. Nil: plaintext (tests, and a controller without TLS).
        public var tls: TLS?

        public struct TLS: Sendable {
            public var certificates: any CertificateSource
            public var controllerIdentity: SpiffeID

            public init(certificates: any CertificateSource, controllerIdentity: SpiffeID) {
                self.certificates = certificates
                self.controllerIdentity = controllerIdentity
            }
        }

        public init(
            host: String, port: Int, proxyID: String, initialBackoff: Duration = .milliseconds(200),
            maximumBackoff: Duration = .seconds(15), keepaliveInterval: Duration = .seconds(30),
            keepaliveTimeout: Duration = .seconds(10), tls: TLS? = nil
        ) {
            self.tls = tls
            self.host = host
            self.port = port
            self.proxyID = proxyID
            self.initialBackoff = initialBackoff
            self.maximumBackoff = maximumBackoff
            self.keepaliveInterval = keepaliveInterval
            self.keepaliveTimeout = keepaliveTimeout
        }
    }

    public let configuration: Configuration
    private let installer: ConfigInstaller
    private let logger: Logger
    private let jitter: @Sendable () -> Double
    private let counts = Mutex((streams: 0, acks: 0, nacks: 0, deltas: 0))
    private let target: Mutex<(host: String, port: Int)>

    /// - Parameter jitter: A value in `0..<1` that spreads the reconnects of many proxies (backoff × 0.5…1.5).
    public init(
        configuration: Configuration, installer: ConfigInstaller, logger: Logger,
        jitter: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }
    ) {
        self.configuration = configuration
        self.target = Mutex((configuration.host, configuration.port))
        self.installer = installer
        self.logger = logger
        self.jitter = jitter
    }

    /// Sends the next connection attempts to another controller address (the current stream is not cut).
    public func retarget(host: String, port: Int) {
        self.target.withLock { $0 = (host, port) }
    }

    /// Streams opened (a hello sent), configs acknowledged and refused, and how many of the configs came as deltas.
    public var statistics: (streams: Int, acks: Int, nacks: Int, deltas: Int) { self.counts.withLock { $0 } }

    public func run() async throws {
        var backoff = self.configuration.initialBackoff
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let started = ContinuousClock.now
            do {
                try await cancelWhenGracefulShutdown { try await self.session() }
                self.logger.info("push stream ended by the controller")
            } catch {
                if Task.isCancelled || Task.isShuttingDownGracefully { return }
                self.logger.info(
                    "push stream failed; serving the last config",
                    metadata: [
                        "error": "\(error)",
                        "config.version": "\(self.installer.store.current?.config.version ?? "none")",
                    ])
            }
            // A stream that lasted resets the backoff.
            if ContinuousClock.now - started > self.configuration.maximumBackoff {
                backoff = self.configuration.initialBackoff
            }
            let wait = backoff * (0.5 + min(max(self.jitter(), 0), 1))
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: wait) }
            } catch {
                return
            }
            backoff = min(backoff * 2, self.configuration.maximumBackoff)
        }
    }

    /// One stream: hello, then configs in and answers out until either side ends it.
    private func session() async throws {
        var transportConfig = HTTP2ClientTransport.Posix.Config.defaults
        transportConfig.connection.keepalive = .init(
            time: self.configuration.keepaliveInterval, timeout: self.configuration.keepaliveTimeout,
            allowWithoutCalls: true)
        var security = HTTP2ClientTransport.Posix.TransportSecurity.plaintext
        if let tls = self.configuration.tls {
            guard let material = tls.certificates.current() else {
                throw PushClientError(message: "no certificate yet: the push stream waits for the proxy's SVID")
            }
            security = try ControllerTLS.security(
                trustRootsPEM: material.trustRootsPEM, controllerIdentity: tls.controllerIdentity,
                certificate: material)
        }
        // A name (the controller's Service, in a cluster) is resolved anew on each connection.
        let (host, port) = self.target.withLock { $0 }
        let target: any ResolvableTarget =
            host.split(separator: ".").count == 4 && host.allSatisfy({ $0.isNumber || $0 == "." })
            ? .ipv4(address: host, port: port) : .dns(host: host, port: port)
        let transport = try HTTP2ClientTransport.Posix(
            target: target, transportSecurity: security, config: transportConfig)
        try await withGRPCClient(transport: transport) { client in
            let push = Weft_Push_V1_ConfigPush.Client(wrapping: client)
            let (answers, answer) = AsyncStream.makeStream(
                of: Weft_Push_V1_ProxyMessage.self, bufferingPolicy: .bufferingOldest(16))
            var hello = Weft_Push_V1_Hello()
            hello.proxyID = self.configuration.proxyID
            hello.runningVersion = self.installer.store.current?.config.version ?? ""
            hello.build = "weft-proxy/\(ProxyLifecycleMetrics.buildVersion)"
            let running = hello.runningVersion
            let first = Weft_Push_V1_ProxyMessage.with { [hello] in $0.hello = hello }
            try await push.stream(
                requestProducer: { writer in
                    self.counts.withLock { $0.streams += 1 }
                    try await writer.write(first)
                    for await message in answers { try await writer.write(message) }
                },
                onResponse: { response in
                    defer { answer.finish() }
                    self.logger.info(
                        "push stream open",
                        metadata: ["proxy.id": "\(self.configuration.proxyID)", "config.version": "\(running)"])
                    for try await message in response.messages {
                        switch message.kind {
                        case .config(let config)?: answer.yield(self.install(config))
                        case .delta(let delta)?: answer.yield(try self.install(delta))
                        case nil: continue
                        }
                    }
                })
        }
    }

    /// Installs one pushed config; the answer names it by version and nonce.
    func install(_ config: Weft_Push_V1_Config) -> Weft_Push_V1_ProxyMessage {
        let result = self.withTrustBundle(config.trustBundlePem) {
            self.installer.install(config.proxyConfig, source: "controller", check: self.isOwnConfig)
        }
        return self.answer(result, version: config.version, nonce: config.nonce)
    }

    /// Runs `install`, taking the trust bundle that came with the config when it installs: a bundle that does not
    /// build TLS contexts with the proxy's certificate refuses the config (the old bundle and config stay).
    private func withTrustBundle(
        _ pem: String, _ install: () -> Result<ProxyState, any Error>
    ) -> Result<ProxyState, any Error> {
        guard !pem.isEmpty, let source = self.configuration.tls?.certificates as? InMemoryCertificateSource,
            var material = source.current(), material.trustRootsPEM != pem
        else { return install() }
        material.trustRootsPEM = pem
        do {
            _ = try MeshTLS.makeContexts(material)
        } catch {
            return .failure(PushClientError(message: "the trust bundle that came with the config: \(error)"))
        }
        let result = install()
        if case .success = result {
            source.replaceTrustRoots(pem)
            self.logger.info("trust bundle updated from the controller")
        }
        return result
    }

    /// Installs one pushed delta. A delta for another version than the one serving (which a controller sends only
    /// by mistake) ends the stream: the next one starts with a Hello naming what runs, and gets the full config.
    func install(_ delta: Weft_Push_V1_Delta) throws -> Weft_Push_V1_ProxyMessage {
        let running = self.installer.store.current?.config.version ?? ""
        guard delta.baseVersion == running else {
            throw PushClientError(
                message: "the controller sent a delta of \(delta.baseVersion), but this proxy runs \(running)")
        }
        self.counts.withLock { $0.deltas += 1 }
        let result: Result<ProxyState, any Error>
        do {
            let decoded = try ProxyConfigDelta.decode(delta.proxyConfigDelta)
            guard decoded.version == delta.version, decoded.base == delta.baseVersion else {
                throw PushClientError(message: "the delta's versions differ from its message's")
            }
            result = self.withTrustBundle(delta.trustBundlePem) {
                self.installer.install(decoded, source: "controller", check: self.isOwnConfig)
            }
        } catch {
            result = .failure(error)
        }
        return self.answer(result, version: delta.version, nonce: delta.nonce)
    }

    private func isOwnConfig(_ state: ProxyState) throws {
        guard state.config.proxy.id == self.configuration.proxyID else {
            throw PushClientError(message: "the config is for \(state.config.proxy.id), not this proxy")
        }
    }

    private func answer(
        _ result: Result<ProxyState, any Error>, version: String, nonce: String
    ) -> Weft_Push_V1_ProxyMessage {
        switch result {
        case .success:
            self.counts.withLock { $0.acks += 1 }
            return .with {
                $0.ack = .with {
                    $0.version = version
                    $0.nonce = nonce
                }
            }
        case .failure(let error):
            self.counts.withLock { $0.nacks += 1 }
            return .with {
                $0.nack = .with {
                    $0.version = version
                    $0.nonce = nonce
                    $0.error = "\(error)"
                }
            }
        }
    }
}

struct PushClientError: Error, CustomStringConvertible {
    var message: String
    var description: String { self.message }
}
