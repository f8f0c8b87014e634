import Crypto
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import ServiceLifecycle
import WeftIdentity
import WeftPush
import X509

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The proxy's identity: it gets its X.509-SVID from the controller's `weft.identity.v1.Identity/Sign` and keeps it
/// fresh.
///
/// At start, and then at about half the certificate's lifetime (``RotationPolicy``, with jitter), it generates a new
/// P-256 key, builds the CSR for its SPIFFE ID, and calls `Sign` with the token read from `tokenPath` (re-read every
/// time: the kubelet rotates projected tokens). The chain, key and trust bundle go into the
/// ``InMemoryCertificateSource`` the proxy's ``MeshTLS`` and ``PushClient`` read: new connections use the new
/// certificate, existing ones keep theirs. A failed renewal is retried with jittered exponential backoff while the
/// current certificate keeps serving until it expires.
public final class IdentityClient: Service {
    public struct Configuration: Sendable {
        public var host: String
        public var port: Int
        /// The SPIFFE ID to request (the token's service account).
        public var identity: SpiffeID
        /// The controller's SPIFFE ID, required of its certificate.
        public var controllerIdentity: SpiffeID
        /// The projected ServiceAccount token (audience `weft`), or a bootstrap token, re-read at every request.
        public var tokenPath: String
        /// The roots the controller's certificate is checked against before the first answer brings the bundle.
        public var controllerCAPEM: String
        public var rotation: RotationPolicy
        public var initialBackoff: Duration
        public var maximumBackoff: Duration

        public init(
            host: String, port: Int, identity: SpiffeID, controllerIdentity: SpiffeID,
            tokenPath: String = "/var/run/secrets/weft/token", controllerCAPEM: String,
            rotation: RotationPolicy = RotationPolicy(), initialBackoff: Duration = .milliseconds(200),
            maximumBackoff: Duration = .seconds(30)
        ) {
            self.host = host
            self.port = port
            self.identity = identity
            self.controllerIdentity = controllerIdentity
            self.tokenPath = tokenPath
            self.controllerCAPEM = controllerCAPEM
            self.rotation = rotation
            self.initialBackoff = initialBackoff
            self.maximumBackoff = maximumBackoff
        }
    }

    public let configuration: Configuration
    private let certificates: InMemoryCertificateSource
    private let logger: Logger
    private let clock: any Clock<Duration>
    private let now: @Sendable () -> Date
    private let jitter: @Sendable () -> Double

    /// - Parameters:
    ///   - clock: what the waits until renewal and between retries sleep on.
    ///   - now: the wall clock the renewal time is computed against (certificate times are wall-clock times).
    ///   - jitter: a value in `0..<1`, spreading renewals (over the policy's jitter range) and retries.
    public init(
        configuration: Configuration, certificates: InMemoryCertificateSource, logger: Logger,
        clock: any Clock<Duration> = ContinuousClock(), now: @escaping @Sendable () -> Date = { Date() },
        jitter: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }
    ) {
        self.configuration = configuration
        self.certificates = certificates
        self.logger = logger
        self.clock = clock
        self.now = now
        self.jitter = jitter
    }

    public func run() async throws {
        var backoff = self.configuration.initialBackoff
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let wait: Duration
            do {
                let schedule = try await self.renew()
                backoff = self.configuration.initialBackoff
                // At least a second: a clock far off the certificate's times must not make a busy loop.
                let seconds = max(1, schedule.timeUntilRenewal(now: self.now()))
                wait = .milliseconds(Int64(seconds * 1000))
            } catch {
                if Task.isCancelled || Task.isShuttingDownGracefully { return }
                self.logger.warning(
                    "certificate request failed; keeping the current certificate",
                    metadata: ["error": "\(error)", "peer.spiffe_id": "\(self.configuration.identity)"])
                wait = backoff * (0.5 + min(max(self.jitter(), 0), 1))
                backoff = min(backoff * 2, self.configuration.maximumBackoff)
            }
            do {
                try await cancelWhenGracefulShutdown { try await self.clock.sleep(for: wait) }
            } catch {
                return
            }
        }
    }

    /// One `Sign` exchange: a new key and CSR, the answer installed. Returns when to renew next.
    @discardableResult
    public func renew() async throws -> RenewalSchedule {
        let key = P256.Signing.PrivateKey()
        let csr = try CSRBuilder.make(identity: self.configuration.identity, key: key)
        let token = String(
            try String(contentsOfFile: self.configuration.tokenPath, encoding: .utf8).trimmedWhitespace)
        // The bundle of the last answer once there is one (it follows root rotations), else the bootstrap roots.
        let roots = self.certificates.current()?.trustRootsPEM ?? self.configuration.controllerCAPEM
        let transport = try HTTP2ClientTransport.Posix(
            target: .ipv4(address: self.configuration.host, port: self.configuration.port),
            transportSecurity: ControllerTLS.security(
                trustRootsPEM: roots, controllerIdentity: self.configuration.controllerIdentity))
        let request = Weft_Identity_V1_SignRequest.with {
            $0.csrPem = csr
            $0.token = token
        }
        let response = try await withGRPCClient(transport: transport) { client in
            try await Weft_Identity_V1_Identity.Client(wrapping: client).sign(request)
        }
        let leaf = try Certificate(pemEncoded: response.certificateChainPem)
        guard leaf.publicKey == Certificate.PublicKey(key.publicKey) else {
            throw IdentityClientError(message: "the controller answered a certificate for another key")
        }
        let material = TLSMaterial(
            certificateChainPEM: response.certificateChainPem, privateKeyPEM: key.pemRepresentation,
            trustRootsPEM: response.trustBundlePem, version: 0)
        // The set must build before it replaces the current one.
        _ = try MeshTLS.makeContexts(material)
        self.certificates.replace(
            certificateChainPEM: material.certificateChainPEM, privateKeyPEM: material.privateKeyPEM,
            trustRootsPEM: material.trustRootsPEM)
        // The lifetime counts from now, not from the back-dated notBefore (1 minute of clock-skew allowance), so
        // that a short lifetime still renews at about its half.
        let jitter = self.configuration.rotation.maximumJitter * (2 * min(max(self.jitter(), 0), 1) - 1)
        let schedule = self.configuration.rotation.schedule(
            notBefore: max(leaf.notValidBefore, min(self.now(), leaf.notValidAfter)), notAfter: leaf.notValidAfter,
            jitter: jitter)
        self.logger.info(
            "certificate installed",
            metadata: [
                "peer.spiffe_id": "\(self.configuration.identity)", "cert.not_after": "\(leaf.notValidAfter)",
                "cert.renew_at": "\(schedule.renewAt)",
            ])
        return schedule
    }
}

struct IdentityClientError: Error, CustomStringConvertible {
    var message: String
    var description: String { self.message }
}
